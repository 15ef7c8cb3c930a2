/**
 * The grading-forgery attacks (grading-forgery-cases.ts) against the isolated tier, whose probe
 * runs on the LXD host (runtime/lxd-probe.ts). Before issue 15's probe, grading ran inside the
 * learner's container and each of these forgeries passed the check.
 */
import { describe } from "vitest";
import { lxdImage, testEnv } from "../support/server.ts";
import { lxdSkipped, reportLxdSkip } from "../support/lxd.ts";
import { describeGradingForgery } from "./grading-forgery-cases.ts";

reportLxdSkip("grading-forgery-isolated.test.ts");

describe.skipIf(lxdSkipped())("isolated tier", () => {
  describeGradingForgery("isolated", () => testEnv({ SHIPSHAPE_TIER: "isolated", SHIPSHAPE_LXD_IMAGE: lxdImage() }));
});
