import { describeGradingForgery } from "./grading-forgery-cases.ts";

// The classroom tier (or whichever SHIPSHAPE_TIER the run asks for; testEnv decides).
describeGradingForgery("classroom");
