import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statfsSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { totalmem } from "node:os";
import path from "node:path";
import { defaultMaxSandboxes, type Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { createServerMetrics, Metrics } from "./metrics.ts";
import { DockerRuntime } from "./runtime/docker-runtime.ts";
import { LxdRuntime } from "./runtime/lxd-runtime.ts";
import type { SandboxRuntime } from "./runtime/types.ts";
import { NetworkWatch } from "./sessions/network-watch.ts";
import { PreviewProxy } from "./preview/preview-proxy.ts";
import { previewPath } from "./preview/preview-routes.ts";
import { SandboxStateWatchers } from "./inspector/state-watcher.ts";
import { EngineEventFeeds } from "./sessions/engine-watch.ts";
import { SandboxStateSockets } from "./transport/sandbox-state-socket.ts";
import { EngineHealth } from "./sessions/engine-health.ts";
import { SandboxFiles } from "./sessions/sandbox-files.ts";
import { SessionManager } from "./sessions/session-manager.ts";
import { Signer } from "./common/signing.ts";
import type { Store } from "./store/store.ts";
import { openStore } from "./store/open-store.ts";
import { ContentWatcher } from "./content/content-watcher.ts";
import { loadExercises } from "./content/exercise-loader.ts";
import { loadQuizzes } from "./content/quiz-loader.ts";
import { Grader } from "./grading/grader.ts";
import { GradingService } from "./grading/grading-service.ts";
import { gradingRoutes } from "./transport/grading-routes.ts";
import { ExerciseSetup } from "./grading/exercise-setup.ts";
import { setupRoutes } from "./transport/setup-routes.ts";
import { sandboxResetRoutes } from "./transport/sandbox-reset-routes.ts";
import { quizRoutes } from "./transport/quiz-routes.ts";
import { clientAddress, createHttpServer } from "./transport/http-server.ts";
import { PublicOrigin } from "./common/public-origin.ts";
import { addressKey } from "./transport/rate-limiter.ts";
import { TerminalSockets } from "./transport/terminal-socket.ts";
import { workshopRoutes } from "./transport/workshop-routes.ts";
import { WorkshopWatchSockets } from "./transport/workshop-watch.ts";
import { InstructorAuth, loadAdminSecret, type AdminSecret } from "./workshops/instructor-auth.ts";
import { loadLessonCatalog } from "./content/lesson-catalog.ts";
import { WorkshopService } from "./workshops/workshop-service.ts";

export interface App {
  /** Where this process listens (tests and benches talk to it there). */
  url: string;
  /** The address learners open (SHIPSHAPE_PUBLIC_URL, or http://localhost:<port>). */
  publicUrl: string;
  port: number;
  sessions: SessionManager;
  runtime: SandboxRuntime;
  store: Store;
  workshops: WorkshopService;
  network: NetworkWatch;
  /** The sandbox panel's engine watchers (their counters show what they cost). */
  sandboxState: SandboxStateWatchers;
  /** Where instructors sign in, and with what (the secret's source decides whether main prints it). */
  instructorSignIn: { url: string } & AdminSecret;
  close(): Promise<void>;
}

/** Wires the layers together (transport → sessions → runtime) and starts listening. */
export async function startApp(config: Config, log: Logger, runtimeOverride?: SandboxRuntime): Promise<App> {
  mkdirSync(config.SHIPSHAPE_DATA_DIR, { recursive: true });
  const store = await openStore(config, log);
  const signer = new Signer(config.SHIPSHAPE_SECRET ?? loadOrCreateSecret(config.SHIPSHAPE_DATA_DIR));
  const metrics = new Metrics();
  const serverMetrics = createServerMetrics(metrics);
  const runtime = runtimeOverride ?? createRuntime(config, log);
  const maxSandboxes = resolveMaxSandboxes(config, log);
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
      maxSandboxes,
      warmPoolSize: config.SHIPSHAPE_WARM_POOL,
      limits,
    },
  });
  const exercisesDir = path.join(config.SHIPSHAPE_CONTENT_DIR, "exercises");
  const quizzesDir = path.join(config.SHIPSHAPE_CONTENT_DIR, "quizzes");
  const exercises = loadExercises(exercisesDir);
  const quizzes = loadQuizzes(quizzesDir);
  // Authors (npm run dev): edits to exercises and quizzes apply without a restart.
  const contentWatchers = config.SHIPSHAPE_WATCH_CONTENT
    ? [
        new ContentWatcher({ dir: exercisesDir, target: exercises, load: loadExercises, log }),
        new ContentWatcher({ dir: quizzesDir, target: quizzes, load: loadQuizzes, log }),
      ]
    : [];
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
  const instructorAuth = new InstructorAuth(adminSecret.secret, Date.now, store.revokedSignIns, store.instructorStore);
  // The preview proxy decides its host names once the port is bound (preview.start below).
  let servesPreviewHost: (host: string | undefined) => boolean = () => false;
  const origin = new PublicOrigin({
    configured: config.publicUrl,
    extraOrigins: config.SHIPSHAPE_ALLOWED_ORIGINS,
    // Host names the preview proxy serves besides the public one (p<port>-<id>.<preview domain>).
    otherHost: (host) => servesPreviewHost(host),
  });
  const clientKey = (req: Parameters<typeof clientAddress>[0]) => addressKey(clientAddress(req, config.SHIPSHAPE_TRUSTED_PROXIES));
  // Before sessions.start(): workshops register their reserves, so reserved sandboxes are adopted after a restart.
  const workshops = new WorkshopService({
    store: store.workshopStore,
    bus: store.bus,
    sessions,
    exercises,
    lessons: loadLessonCatalog(path.join(config.SHIPSHAPE_CONTENT_DIR, "lessons")),
    log,
    maxSandboxes,
  });
  const workshopApi = workshopRoutes({ workshops, auth: instructorAuth, signer, log, cookies: origin.cookies, clientKey });
  const watch = new WorkshopWatchSockets({ workshops, auth: instructorAuth, origins: origin, cookies: origin.cookies, log });
  // Labelled with the tier, so a host running both tiers (or comparing hosts) sees each apart.
  const tier = { tier: config.securityTier };
  metrics.gauge("shipshape_sandboxes_live", "Sandboxes alive, by security tier", () => sessions.counts.live, tier);
  metrics.gauge("shipshape_sandboxes_starting", "Sandboxes starting", () => sessions.counts.starting);
  metrics.gauge("shipshape_sandboxes_warm", "Started sandboxes waiting for a learner (the warm pool)", () => sessions.counts.warm, tier);
  metrics.gauge("shipshape_terminals_open", "Terminal sockets attached to a shell", () => sessions.counts.terminals);

  // Before any sandbox is handed out: the egress policy is in place (or re-applied), and sandboxes
  // that survived a restart have their ports pinned. A failure refuses new sandboxes, not the start.
  const network = new NetworkWatch({
    runtime,
    log,
    intervalMs: config.SHIPSHAPE_NETWORK_CHECK_INTERVAL,
    repair: config.SHIPSHAPE_NETWORK_REPAIR,
  });
  await network.start();

  await workshops.restore();
  // An unreachable engine must not stop the server: /readyz and /healthz say why, terminals show it.
  await sessions.start().catch((e: unknown) => log.warn("could not reattach sessions at start", { error: String(e) }));
  await workshops.start();

  // One `docker events` per watched sandbox, shared by its port list and its sandbox panel.
  const feeds = new EngineEventFeeds({ runtime, sessions });
  const preview = new PreviewProxy({ config, sessions, runtime, feeds, signer, log, metrics: serverMetrics, origins: origin });
  servesPreviewHost = (host) => preview.servesHost(host);
  const health = new EngineHealth({ runtime, sessions, metrics, log });
  // The sandbox panel: its port links are the preview's own paths, made from the session and port.
  const stateWatchers = new SandboxStateWatchers({ runtime, sessions, feeds, log: log.child({ component: "sandbox-state" }), previewUrl: previewPath });
  const stateSockets = new SandboxStateSockets({ watchers: stateWatchers, sessions, origins: origin, log });
  metrics.gauge("shipshape_sandbox_state_watches", "Sandboxes whose engine the sandbox panel watches", () => stateWatchers.counters.watches);
  const sessionLimits = { ...limits, ttlMs: config.SHIPSHAPE_SESSION_TTL, idleTimeoutMs: config.SHIPSHAPE_IDLE_TIMEOUT };
  const server = createHttpServer({
    tier: config.securityTier,
    mounts: [preview, watch, stateSockets],
    sessions,
    health,
    files: new SandboxFiles({ sessions, runtime }),
    network,
    signer,
    sockets,
    metrics,
    log,
    siteDir: config.SHIPSHAPE_SITE_DIR,
    origin,
    metricsTokens: [adminSecret.secret, ...(config.SHIPSHAPE_METRICS_TOKEN ? [config.SHIPSHAPE_METRICS_TOKEN] : [])],
    routes: {
      ...gradingRoutes({ grading }),
      ...setupRoutes({ setup: exerciseSetup }),
      ...sandboxResetRoutes({ sessions, signer, limits: sessionLimits }),
      ...quizRoutes({ grading, signer, cookies: origin.cookies, clientKey }),
      ...workshopApi.routes,
    },
    sessionOptions: (ownerId) => workshops.sessionOptionsFor(ownerId),
    limits: sessionLimits,
    abuse: {
      sessionsPerAddressPerMinute: config.SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE,
      sandboxesPerAddress: config.SHIPSHAPE_SANDBOXES_PER_ADDRESS,
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
  origin.listening(port);
  // Previews answer 503 until here: their form depends on the public URL, which may name the port just bound.
  preview.start(origin.origin);
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
  log.info("serving", { publicUrl: origin.origin, listening: `${config.HOST}:${port}`, secureCookies: origin.cookies.secure });
  if (!origin.cookies.secure) {
    log.warn("the public URL is plain http on a name other than localhost: cookies travel unencrypted and are not __Host- bound", {
      publicUrl: origin.origin,
    });
  }

  // Results, ended sessions and ended workshops older than SHIPSHAPE_RETENTION go (README, docs/security.md).
  const prune = async () => {
    try {
      const pruned = await store.prune(Date.now() - config.SHIPSHAPE_RETENTION);
      await store.revokedSignIns.prune(Date.now());
      if (pruned.results + pruned.sessions + pruned.workshops > 0) log.info("pruned old records", { ...pruned, retention: config.SHIPSHAPE_RETENTION });
    } catch (e) {
      log.error("pruning old records failed", { error: String(e) });
    }
  };
  await prune();
  const pruner = setInterval(() => void prune(), RETENTION_PRUNE_INTERVAL_MS);
  pruner.unref();
  return {
    url: `http://${host}:${port}`,
    publicUrl: origin.origin,
    port,
    sessions,
    runtime,
    store,
    workshops,
    network,
    sandboxState: stateWatchers,
    instructorSignIn: { url: `${origin.origin}/instructor/`, ...adminSecret },
    close: async () => {
      for (const w of contentWatchers) w.close();
      clearInterval(pruner);
      network.close();
      sockets.close();
      preview.close();
      stateSockets.close();
      stateWatchers.close();
      feeds.close();
      watch.close();
      workshopApi.close(); // open dashboard streams would keep server.close() waiting
      workshops.close();
      await sessions.stop();
      await new Promise<void>((r) => server.close(() => r()));
      health.close();
      server.closeAllConnections();
      await runtime.close();
      await store.close();
    },
  };
}

/** Pruning is cheap (indexed deletes); hourly keeps the tables near the retention line. */
const RETENTION_PRUNE_INTERVAL_MS = 3600_000;

/**
 * SHIPSHAPE_MAX_SANDBOXES, or when it is unset what this machine's memory and disk can hold
 * (defaultMaxSandboxes), logged so the operator sees the number and where it came from.
 */
function resolveMaxSandboxes(config: Config, log: Logger): number {
  if (config.SHIPSHAPE_MAX_SANDBOXES !== undefined) {
    log.info("sandbox cap", { maxSandboxes: config.SHIPSHAPE_MAX_SANDBOXES, from: "SHIPSHAPE_MAX_SANDBOXES" });
    return config.SHIPSHAPE_MAX_SANDBOXES;
  }
  // Sandboxes write into the engine's data root; without access to it, the data dir's disk stands in.
  let freeDiskBytes: number | undefined;
  let diskPath: string | undefined;
  for (const candidate of ["/var/lib/docker", config.SHIPSHAPE_DATA_DIR]) {
    try {
      const fs = statfsSync(candidate);
      freeDiskBytes = fs.bavail * fs.bsize;
      diskPath = candidate;
      break;
    } catch {
      // not there or not readable: try the next one
    }
  }
  const cap = defaultMaxSandboxes({
    totalMemoryBytes: totalmem(),
    sandboxMemoryBytes: config.SHIPSHAPE_SANDBOX_MEMORY,
    freeDiskBytes,
    sandboxDiskBytes: config.SHIPSHAPE_SANDBOX_DISK,
  });
  log.info("sandbox cap", {
    maxSandboxes: cap.max,
    from: "memory and disk (set SHIPSHAPE_MAX_SANDBOXES to choose)",
    byMemory: cap.byMemory,
    byDisk: cap.byDisk ?? null,
    diskPath: diskPath ?? null,
  });
  return cap.max;
}

/** The engine of the configured tier (config.ts decides: SHIPSHAPE_TIER). */
export function createRuntime(config: Config, log: Logger): SandboxRuntime {
  if (config.sandboxEngine === "lxd") {
    return new LxdRuntime({
      socketPath: config.SHIPSHAPE_LXD_SOCKET,
      image: config.lxdImage,
      network: config.SHIPSHAPE_LXD_NETWORK,
      pool: config.SHIPSHAPE_LXD_POOL,
      target: config.SHIPSHAPE_LXD_TARGET,
      namespace: config.SHIPSHAPE_NAMESPACE,
      log,
    });
  }
  return new DockerRuntime({
    image: config.sandboxImage,
    network: config.SHIPSHAPE_SANDBOX_NETWORK,
    namespace: config.SHIPSHAPE_NAMESPACE,
    runtime: config.SHIPSHAPE_SANDBOX_RUNTIME,
    log,
  });
}

/** The signing key survives restarts, so learners' cookies and tokens stay valid. */
function loadOrCreateSecret(dataDir: string): string {
  const file = path.join(dataDir, "secret");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  return secret;
}
