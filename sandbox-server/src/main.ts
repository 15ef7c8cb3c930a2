import { ConfigError, loadConfig, tierText } from "./config.ts";
import { startApp } from "./app.ts";
import { createLogger } from "./log.ts";
import { ContentError } from "./content/content-files.ts";
import { SchemaError } from "./store/migrations.ts";

/** Entry point: validate configuration, start, and stop cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(e.message + "\n");
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.SHIPSHAPE_LOG_LEVEL, { service: "shipshape" });
  let app;
  try {
    app = await startApp(config, log);
  } catch (e) {
    if (e instanceof ContentError || e instanceof SchemaError) {
      process.stderr.write(e.message + "\n");
      process.exit(2);
    }
    const code = (e as { code?: string }).code;
    if (code === "EADDRINUSE") {
      process.stderr.write(
        `Port ${config.PORT} is already in use, so shipshape cannot listen on it.\n` +
          `Stop the program that uses it (find it with: ss -ltnp 'sport = :${config.PORT}') or choose another port: PORT=4322 ./shipshape start\n`,
      );
      process.exit(1);
    }
    if (code === "EACCES") {
      process.stderr.write(`Not allowed to listen on port ${config.PORT}. Choose a port above 1023: PORT=4321 ./shipshape start\n`);
      process.exit(1);
    }
    throw e;
  }
  // A promise rejected somewhere nobody awaited must not end every learner's terminal: log it
  // loudly (it is a bug) and keep serving. Synchronous exceptions still stop the process.
  process.on("unhandledRejection", (reason) => {
    log.error("unhandled promise rejection (a bug; the server keeps running)", {
      error: reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason),
      stack: reason instanceof Error ? reason.stack : undefined,
    });
  });
  log.info("shipshape is ready", { url: app.publicUrl, listening: app.url, tier: config.securityTier, image: config.sandboxImage });
  process.stdout.write(`\n  shipshape is running at ${app.publicUrl}  (playground: ${app.publicUrl}/playground/)\n`);
  process.stdout.write(tierText(config) + "\n");
  process.stdout.write(instructorSignInText(app.instructorSignIn) + "\n");
  if (config.publicUrl === undefined && !["127.0.0.1", "::1", "localhost"].includes(config.HOST)) {
    // The Host check (DNS rebinding) refuses every other name: say so before a class on the LAN finds out.
    process.stdout.write(
      `  Learners on other machines: start with SHIPSHAPE_PUBLIC_URL set to the address they open, ` +
        `e.g. SHIPSHAPE_PUBLIC_URL=http://192.168.1.20:${app.port} ./shipshape start\n`,
    );
  }
  process.stdout.write("\n");

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { signal });
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await app.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

void main();

/**
 * How instructors sign in: where, and where the secret is kept; never the secret itself.
 *
 * WARNING: stdout ends up in journald, container logs and CI output, readable by more people than
 * the 0600 file; whoever holds the secret can watch every learner's terminal.
 */
function instructorSignInText(signIn: { url: string; secret: string; source: "env" | "file" | "generated"; file: string }): string {
  switch (signIn.source) {
    case "generated":
      return (
        `  Instructors sign in at ${signIn.url} with the secret just generated into ${signIn.file}\n` +
        `  (show it with: cat ${signIn.file})`
      );
    case "file":
      return `  Instructors sign in at ${signIn.url} with the secret kept in ${signIn.file}`;
    case "env":
      return `  Instructors sign in at ${signIn.url} with SHIPSHAPE_ADMIN_SECRET`;
  }
}
