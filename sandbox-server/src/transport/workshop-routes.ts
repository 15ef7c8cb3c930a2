import type { IncomingMessage, ServerResponse } from "node:http";
import {
  capacitySchema,
  createInviteSchema,
  createWorkshopSchema,
  inviteTokenSchema,
  joinSchema,
  messageSchema,
  prewarmSchema,
  signInSchema,
} from "../../../contracts/workshop-api.ts";
import { json, readCookie } from "../common/http.ts";
import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { newId, type Signer } from "../common/signing.ts";
import { BUILT_IN_ADMIN_ID, InstructorAuth, type SignedInInstructor } from "../workshops/instructor-auth.ts";
import type { CreatedInvite, InstructorSessionView } from "../../../contracts/workshop-api.ts";
import { normalizeJoinCode } from "../workshops/join-code.ts";
import type { WorkshopService } from "../workshops/workshop-service.ts";
import { readJson, setOwnerCookie, type Routes } from "./http-server.ts";
import { cookieHeader, type CookieNames } from "../common/public-origin.ts";
import { RateLimiter } from "./rate-limiter.ts";

/** A dashboard stream whose browser stopped reading is cut off rather than buffered without end. */
const MAX_STREAM_BUFFER = 1024 * 1024;
const STREAM_HEARTBEAT_MS = 15_000;

export interface WorkshopRoutesDeps {
  workshops: WorkshopService;
  auth: InstructorAuth;
  signer: Signer;
  log: Logger;
  /** Cookie names and flags, from the public URL. */
  cookies: CookieNames;
  /**
   * The key per-address limits count under: the client address the trusted proxy reports (its /64
   * for IPv6), never the raw peer, or behind a proxy one guesser locks everyone out.
   */
  clientKey: (req: IncomingMessage) => string;
}

/**
 * Classroom workshops over HTTP (docs/workshops.md). Instructor routes need the signed
 * `shipshape_instructor` cookie (from the admin secret, or an admin's one-time invite), and a
 * workshop's routes its owner or an admin; learner routes use the owner cookie, as
 * sessions do. POST/PATCH/DELETE are refused from foreign origins by the HTTP server.
 */
export function workshopRoutes(deps: WorkshopRoutesDeps): { routes: Routes; close(): void } {
  const { workshops, auth, signer, cookies } = deps;
  const log = deps.log.child({ component: "workshop-routes" });
  const signIns = new RateLimiter({ capacity: 10, refillPerMinute: 10 });
  // Only wrong codes cost a token: a whole class behind one address must be able to join at once.
  const badCodes = new RateLimiter({ capacity: 30, refillPerMinute: 30 });
  const streams = new Set<ServerResponse>();

  // Per address, like sign-in; only refused links cost a token (as with join codes), so a school's
  // instructors behind one address can all accept theirs, while a guesser is stopped after 10.
  const badInvites = new RateLimiter({ capacity: 10, refillPerMinute: 10 });

  const requireInstructor = async (req: IncomingMessage): Promise<SignedInInstructor> => {
    const instructor = await auth.whoIs(readCookie(req, cookies.instructor));
    if (!instructor) throw new ShipshapeError("unauthorized", "Sign in as an instructor first (at /instructor/).");
    return instructor;
  };
  /**
   * The signed-in instructor, when they may see and change this workshop (its owner, or an admin).
   * An unknown workshop is a 404 for everyone; another instructor's is a 403.
   */
  const requireWorkshop = async (req: IncomingMessage, id: string): Promise<SignedInInstructor> => {
    const instructor = await requireInstructor(req);
    const owner = await workshops.ownerOf(id);
    if (owner === undefined) await workshops.get(id); // throws the usual "no such workshop"
    else if (!InstructorAuth.mayManage(instructor, owner)) {
      log.warn("workshop refused to another instructor", { workshopId: id, instructorId: instructor.id });
      throw new ShipshapeError("forbidden", "This workshop belongs to another instructor. Ask them, or an admin, to open it.");
    }
    return instructor;
  };
  /** Runs an invite look-up unless this address has run out of wrong tries; a wrong one costs a try. */
  const inviteAttempt = async <T>(req: IncomingMessage, attempt: () => Promise<T>): Promise<T> => {
    const tooMany = () => new ShipshapeError("rate_limited", "Too many invite link attempts from your address. Wait a minute and try again.");
    if (badInvites.waitMs(address(req)) > 0) throw tooMany();
    try {
      return await attempt();
    } catch (e) {
      if (e instanceof ShipshapeError && e.code === "unauthorized") {
        log.warn("instructor invite refused", { address: address(req) });
        badInvites.take(address(req));
      }
      throw e;
    }
  };
  const address = deps.clientKey;
  const setInstructorCookie = (res: ServerResponse, value: string, maxAgeSeconds: number) =>
    // Strict: the instructor's cookie never rides along on a request another site starts.
    res.setHeader("set-cookie", cookieHeader(cookies.instructor, value, { secure: cookies.secure, sameSite: "Strict", maxAgeSeconds }));

  const routes: Routes = {
    // ---- instructor sign-in ----
    "POST /api/instructor/session": async (req, res) => {
      if (!signIns.take(address(req))) {
        throw new ShipshapeError("rate_limited", "Too many sign-in attempts from your address. Wait a minute and try again.");
      }
      const body = signInSchema.parse(await readJson(req));
      if (!auth.checkSecret(body.secret)) {
        log.warn("instructor sign-in refused", { address: address(req) });
        throw new ShipshapeError("unauthorized", "That is not the instructor secret. It is in the server's data directory (admin-secret) or SHIPSHAPE_ADMIN_SECRET.");
      }
      const { value, maxAgeSeconds } = auth.issue(BUILT_IN_ADMIN_ID);
      setInstructorCookie(res, value, maxAgeSeconds);
      json(res, 200, { signedIn: true });
    },
    "GET /api/instructor/session": async (req, res) => {
      const instructor = await auth.whoIs(readCookie(req, cookies.instructor));
      const view: InstructorSessionView = instructor ? { signedIn: true, instructor } : { signedIn: false };
      json(res, 200, view);
    },
    "DELETE /api/instructor/session": async (req, res) => {
      // Revoked on the server (a copy of the cookie stops working too), then cleared in the browser.
      await auth.revoke(readCookie(req, cookies.instructor));
      setInstructorCookie(res, "", 0);
      res.writeHead(204).end();
    },

    // ---- instructor accounts: invites (admins make them; the invited person uses one once) ----
    "POST /api/instructor/invites": async (req, res) => {
      const admin = await requireInstructor(req);
      const body = createInviteSchema.parse(await readJson(req));
      const { token, expiresAt } = await auth.createInvite(admin, body.name, body.role);
      log.info("instructor invite created", { by: admin.id, role: body.role });
      // A fragment, never a query: the token does not reach server logs or a Referer header.
      const invite: CreatedInvite = { link: `/instructor/#invite=${token}`, name: (await auth.previewInvite(token)).name, role: body.role, expiresAt };
      json(res, 201, invite);
    },
    "POST /api/instructor/invites/preview": async (req, res) => {
      const body = inviteTokenSchema.parse(await readJson(req));
      json(res, 200, await inviteAttempt(req, () => auth.previewInvite(body.token)));
    },
    "POST /api/instructor/invites/redeem": async (req, res) => {
      const body = inviteTokenSchema.parse(await readJson(req));
      const instructor = await inviteAttempt(req, () => auth.redeemInvite(body.token));
      const { value, maxAgeSeconds } = auth.issue(instructor.id);
      setInstructorCookie(res, value, maxAgeSeconds);
      log.info("instructor account created from an invite", { instructorId: instructor.id, role: instructor.role });
      const view: InstructorSessionView = { signedIn: true, instructor };
      json(res, 200, view);
    },
    "GET /api/instructor/instructors": async (req, res) => {
      const admin = await requireInstructor(req);
      json(res, 200, { instructors: await auth.listAccounts(admin) });
    },
    "POST /api/instructor/instructors/:id/sign-in-link": async (req, res, _owner, params) => {
      const admin = await requireInstructor(req);
      const { token, expiresAt, name, role } = await auth.createSignInLink(admin, params.id!);
      log.info("instructor sign-in link created", { by: admin.id, instructorId: params.id });
      const link: CreatedInvite = { link: `/instructor/#invite=${token}`, name, role, expiresAt };
      json(res, 201, link);
    },
    "POST /api/instructor/instructors/:id/disable": async (req, res, _owner, params) => {
      const admin = await requireInstructor(req);
      const account = await auth.disable(admin, params.id!);
      log.info("instructor disabled", { by: admin.id, instructorId: account.id });
      json(res, 200, account);
    },

    "GET /api/instructor/lessons": async (req, res) => {
      await requireInstructor(req);
      json(res, 200, { lessons: workshops.lessonCatalog() });
    },

    // ---- instructor: workshops ----
    "GET /api/workshops": async (req, res) => {
      const instructor = await requireInstructor(req);
      json(res, 200, { workshops: await workshops.list(instructor.role === "admin" ? undefined : instructor.id) });
    },
    "POST /api/workshops": async (req, res) => {
      const instructor = await requireInstructor(req);
      const body = createWorkshopSchema.parse(await readJson(req));
      json(res, 201, await workshops.create(body, instructor.id));
    },
    "GET /api/workshops/:id": async (req, res, _owner, params) => {
      await requireWorkshop(req, params.id!);
      json(res, 200, await workshops.dashboard(params.id!));
    },
    "PATCH /api/workshops/:id": async (req, res, _owner, params) => {
      await requireWorkshop(req, params.id!);
      const body = capacitySchema.parse(await readJson(req));
      json(res, 200, await workshops.setCapacity(params.id!, body.capacity));
    },
    "POST /api/workshops/:id/prewarm": async (req, res, _owner, params) => {
      await requireWorkshop(req, params.id!);
      const body = prewarmSchema.parse(await readJson(req));
      json(res, 200, await workshops.prewarm(params.id!, body.count));
    },
    "POST /api/workshops/:id/messages": async (req, res, _owner, params) => {
      await requireWorkshop(req, params.id!);
      const body = messageSchema.parse(await readJson(req));
      json(res, 200, await workshops.broadcast(params.id!, body.message));
    },
    "POST /api/workshops/:id/end": async (req, res, _owner, params) => {
      await requireWorkshop(req, params.id!);
      json(res, 200, await workshops.end(params.id!));
    },
    "GET /api/workshops/:id/grades.csv": async (req, res, _owner, params) => {
      await requireWorkshop(req, params.id!);
      const { filename, csv } = await workshops.gradesCsv(params.id!);
      res.writeHead(200, {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${filename}"`,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      });
      // The byte-order mark makes Excel read the file as UTF-8 (names with accents).
      res.end("\ufeff" + csv);
    },
    /** The live dashboard as Server-Sent Events: a `dashboard` event with the whole grid whenever it changes. */
    "GET /api/workshops/:id/events": async (req, res, _owner, params) => {
      await requireWorkshop(req, params.id!);
      const id = params.id!;
      await workshops.get(id); // 404 before the stream starts
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no", // nginx: do not buffer the stream
      });
      res.write("retry: 2000\n\n");
      streams.add(res);
      const send = (text: string) => {
        if (res.writableLength > MAX_STREAM_BUFFER) return void res.destroy();
        res.write(text);
      };
      let closed = false;
      let unsubscribe = () => {};
      let unwatch = () => {};
      const heartbeat = setInterval(() => send(": still here\n\n"), STREAM_HEARTBEAT_MS);
      // Registered before the first await, so a stream closed while subscribing is cleaned up too.
      res.on("close", () => {
        closed = true;
        clearInterval(heartbeat);
        unsubscribe();
        unwatch();
        streams.delete(res);
      });
      const stopFeed = await workshops.subscribe(id, (snapshot) => send(`event: dashboard\ndata: ${JSON.stringify(snapshot)}\n\n`));
      // The stream lives no longer than the sign-in that opened it (signed out, or expired).
      const stopWatch = await auth.watch(readCookie(req, cookies.instructor), () => {
        send(`event: signed-out\ndata: ${JSON.stringify({ message: "Your instructor sign-in ended. Sign in again at /instructor/." })}\n\n`);
        res.end();
      });
      if (closed) {
        stopFeed();
        stopWatch();
      } else {
        unsubscribe = stopFeed;
        unwatch = stopWatch;
      }
    },

    // ---- learners ----
    "POST /api/workshops/join": async (req, res, ownerId) => {
      const body = joinSchema.parse(await readJson(req));
      if (!normalizeJoinCode(body.code) && !badCodes.take(address(req))) {
        throw new ShipshapeError("rate_limited", "Too many wrong codes from your address. Wait a minute and try again.");
      }
      // A new browser's identity is handed out only when the join succeeds (after every limit).
      const owner = ownerId ?? newId(16);
      try {
        const joined = await workshops.join(owner, body.code, body.name);
        if (!ownerId) setOwnerCookie(res, cookies, signer.sign(owner));
        json(res, 200, joined);
      } catch (e) {
        if (e instanceof ShipshapeError && e.code === "not_found" && !badCodes.take(address(req))) {
          throw new ShipshapeError("rate_limited", "Too many wrong codes from your address. Wait a minute and try again.");
        }
        throw e;
      }
    },
    "GET /api/workshops/mine": async (_req, res, ownerId) => {
      const view = ownerId ? await workshops.mine(ownerId) : undefined;
      if (!view) throw new ShipshapeError("not_found", "You have not joined a workshop in this browser.");
      json(res, 200, view);
    },
    "DELETE /api/workshops/mine": async (_req, res, ownerId) => {
      if (!ownerId || !(await workshops.leave(ownerId))) throw new ShipshapeError("not_found", "You are not in a workshop.");
      res.writeHead(204).end();
    },
    /** The link an instructor shares: /join/K7QX2M opens the join page with the code filled in. */
    "GET /join/:code": (_req, res, _owner, params) => {
      const code = normalizeJoinCode(params.code ?? "") ?? "";
      res.writeHead(302, { location: `/join/${code ? `?code=${code}` : ""}`, "cache-control": "no-store" }).end();
    },
  };

  return {
    routes,
    close: () => {
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}
