import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { publicUrlOf, type Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { createServerMetrics, Metrics } from "./metrics.ts";
import { DockerRuntime } from "./runtime/docker-runtime.ts";
import type { SandboxRuntime } from "./runtime/types.ts";
import { PreviewProxy } from "./preview/preview-proxy.ts";
import { EngineHealth } from "./sessions/engine-health.ts";
import { SandboxFiles } from "./sessions/sandbox-files.ts";
import { SessionManager } from "./sessions/session-manager.ts";
import { Signer } from "./common/signing.ts";
import { Store } from "./store/store.ts";
import { loadExercises } from "./content/exercise-loader.ts";
import { loadQuizzes } from "./content/quiz-loader.ts";
import { Grader } from "./grading/grader.ts";
import { GradingService } from "./grading/grading-service.ts";
import { gradingRoutes } from "./transport/grading-routes.ts";
import { ExerciseSetup } from "./grading/exercise-setup.ts";
import { setupRoutes } from "./transport/setup-routes.ts";
import { quizRoutes } from "./transport/quiz-routes.ts";
import { createHttpServer } from "./transport/http-server.ts";
import { TerminalSockets } from "./transport/terminal-socket.ts";
import { WorkshopStore } from "./store/workshop-store.ts";
import { workshopRoutes } from "./transport/workshop-routes.ts";
import { WorkshopWatchSockets } from "./transport/workshop-watch.ts";
import { InstructorAuth, loadAdminSecret, type AdminSecret } from "./workshops/instructor-auth.ts";
import { loadLessonCatalog } from "./content/lesson-catalog.ts";
import { WorkshopService } from "./workshops/workshop-service.ts";

export interface App {
  url: string;
  port: number;
  sessions: SessionManager;
  runtime: SandboxRuntime;
  store: Store;
  workshops: WorkshopService;
  /** Where instructors sign in, and with what (the secret's source decides whether main prints it). */
  instructorSignIn: { url: string } & AdminSecret;
  close(): Promise<void>;
}

/** Wires the layers together (transport → sessions → runtime) and starts listening. */
export async function startApp(config: Config, log: Logger, runtimeOverride?: SandboxRuntime): Promise<App> {
  mkdirSync(config.SHIPSHAPE_DATA_DIR, { recursive: true });
  const store = new Store(path.join(config.SHIPSHAPE_DATA_DIR, "shipshape.db"));
  const signer = new Signer(config.SHIPSHAPE_SECRET ?? loadOrCreateSecret(config.SHIPSHAPE_DATA_DIR));
  const metrics = new Metrics();
  const serverMetrics = createServerMetrics(metrics);
  const runtime =
    runtimeOverride ??
    new DockerRuntime({
      image: config.sandboxImage,
      network: config.SHIPSHAPE_SANDBOX_NETWORK,
      namespace: config.SHIPSHAPE_NAMESPACE,
      runtime: config.SHIPSHAPE_SANDBOX_RUNTIME,
      log,
    });
  const limits = {
    memoryBytes: config.SHIPSHAPE_SANDBOX_MEMORY,
    cpus: config.SHIPSHAPE_SANDBOX_CPUS,
    pids: config.SHIPSHAPE_SANDBOX_PIDS,
    diskBytes: config.SHIPSHAPE_SANDBOX_DISK,
  };
  const sessions = new SessionManager({
    runtime,
    store,
    log,
    metrics: serverMetrics,
    policy: {
      ttlMs: config.SHIPSHAPE_SESSION_TTL,
      idleTimeoutMs: config.SHIPSHAPE_IDLE_TIMEOUT,
      reapIntervalMs: config.SHIPSHAPE_REAP_INTERVAL,
      limitCheckIntervalMs: config.SHIPSHAPE_LIMIT_CHECK_INTERVAL,
      maxSandboxes: config.SHIPSHAPE_MAX_SANDBOXES,
      warmPoolSize: config.SHIPSHAPE_WARM_POOL,
      limits,
    },
  });
  const exercises = loadExercises(path.join(config.SHIPSHAPE_CONTENT_DIR, "exercises"));
  const quizzes = loadQuizzes(path.join(config.SHIPSHAPE_CONTENT_DIR, "quizzes"));
  const grader = new Grader({ runtime, store, log, maxProbes: config.SHIPSHAPE_CHECKS_AT_ONCE, metrics: serverMetrics });
  const grading = new GradingService({ exercises, quizzes, grader, sessions, store });
  const exerciseSetup = new ExerciseSetup({ exercises, sessions, runtime, store, log });
  const sockets = new TerminalSockets({
    sessions,
    signer,
    log,
    metrics: serverMetrics,
    maxSocketsPerOwner: config.SHIPSHAPE_TERMINALS_PER_BROWSER,
  });
  const adminSecret = loadAdminSecret(config.SHIPSHAPE_ADMIN_SECRET, config.SHIPSHAPE_DATA_DIR);
  const instructorAuth = new InstructorAuth(adminSecret.secret);
  // Before sessions.start(): workshops register their reserves, so reserved sandboxes are adopted after a restart.
  const workshops = new WorkshopService({
    store: new WorkshopStore(store.db),
    sessions,
    exercises,
    lessons: loadLessonCatalog(path.join(config.SHIPSHAPE_CONTENT_DIR, "lessons")),
    log,
    maxSandboxes: config.SHIPSHAPE_MAX_SANDBOXES,
  });
  const workshopApi = workshopRoutes({ workshops, auth: instructorAuth, signer, log });
  const watch = new WorkshopWatchSockets({ workshops, auth: instructorAuth, allowedOrigins: config.SHIPSHAPE_ALLOWED_ORIGINS, log });
  // Labelled with the tier, so a host running both tiers (or comparing hosts) sees each apart.
  const tier = { tier: config.securityTier };
  metrics.gauge("shipshape_sandboxes_live", "Sandboxes alive, by security tier", () => sessions.counts.live, tier);
  metrics.gauge("shipshape_sandboxes_starting", "Sandboxes starting", () => sessions.counts.starting);
  metrics.gauge("shipshape_sandboxes_warm", "Started sandboxes waiting for a learner (the warm pool)", () => sessions.counts.warm, tier);
  metrics.gauge("shipshape_terminals_open", "Terminal sockets attached to a shell", () => sessions.counts.terminals);

  // An unreachable engine must not stop the server: /healthz says why, terminals show it.
  await sessions.start().catch((e: unknown) => log.warn("could not reattach sessions at start", { error: String(e) }));
  workshops.start();

  const preview = new PreviewProxy({ config, sessions, runtime, signer, log, metrics: serverMetrics });
  const health = new EngineHealth({ runtime, sessions, metrics, log });
  const server = createHttpServer({
    mounts: [preview, watch],
    sessions,
    health,
    files: new SandboxFiles({ sessions, runtime }),
    signer,
    sockets,
    metrics,
    log,
    siteDir: config.SHIPSHAPE_SITE_DIR,
    allowedOrigins: config.SHIPSHAPE_ALLOWED_ORIGINS,
    routes: {
      ...gradingRoutes({ grading }),
      ...setupRoutes({ setup: exerciseSetup }),
      ...quizRoutes({ grading, signer }),
      ...workshopApi.routes,
    },
    sessionOptions: (ownerId) => workshops.sessionOptionsFor(ownerId),
    limits: { ...limits, ttlMs: config.SHIPSHAPE_SESSION_TTL, idleTimeoutMs: config.SHIPSHAPE_IDLE_TIMEOUT },
    abuse: {
      sessionsPerAddressPerMinute: config.SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE,
      trustedProxies: config.SHIPSHAPE_TRUSTED_PROXIES,
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.PORT, config.HOST, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // Previews answer 503 until here: their form depends on the public URL, which may name the port just bound.
  preview.start(publicUrlOf(config, port));
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
  return {
    url: `http://${host}:${port}`,
    port,
    sessions,
    runtime,
    store,
    workshops,
    instructorSignIn: { url: `http://${host}:${port}/instructor/`, ...adminSecret },
    close: async () => {
      sockets.close();
      preview.close();
      watch.close();
      workshopApi.close(); // open dashboard streams would keep server.close() waiting
      workshops.close();
      await sessions.stop();
      await new Promise<void>((r) => server.close(() => r()));
      health.close();
      server.closeAllConnections();
      await runtime.close();
      store.close();
    },
  };
}

/** The signing key survives restarts, so learners' cookies and tokens stay valid. */
function loadOrCreateSecret(dataDir: string): string {
  const file = path.join(dataDir, "secret");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  return secret;
}
