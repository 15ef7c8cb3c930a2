import { describe, expect, it } from "vitest";
import { containerText, formatBytes, layerText } from "../../../src/client/sandbox/sandbox-panel.ts";
import type { ContainerView, ImageView } from "../../../contracts/sandbox-state.ts";

const web: ContainerView = {
  id: "a".repeat(64),
  name: "web",
  image: "nginx",
  imageId: `sha256:${"1".repeat(64)}`,
  status: "running",
  exitCode: null,
  oomKilled: false,
  command: "nginx -g daemon off;",
  mounts: [],
  networks: ["bridge"],
  envNames: [],
  ports: [
    { hostPort: 8080, containerPort: 80, protocol: "tcp", reachable: true },
    { hostPort: 5353, containerPort: 53, protocol: "udp", reachable: true },
  ],
};

describe("sandbox panel: the words beside the pictures", () => {
  it("writes sizes as people read them", () => {
    expect([0, 999, 1_000, 4_200, 73_000_000, 1_500_000_000].map(formatBytes)).toEqual(["0 B", "999 B", "1.0 kB", "4.2 kB", "73 MB", "1.5 GB"]);
  });

  it("says a container's state, exit code or OOM kill, and the TCP ports it publishes", () => {
    expect(containerText(web)).toBe("web, running, image nginx, publishes 8080");
    expect(containerText({ ...web, status: "exited", exitCode: 2, ports: [] })).toBe("web, exited with code 2, image nginx");
    expect(containerText({ ...web, status: "exited", exitCode: 137, oomKilled: true, ports: [] })).toBe("web, killed: out of memory, image nginx");
  });

  it("says which layer it is and whom it is shared with", () => {
    const image: ImageView = {
      id: `sha256:${"2".repeat(64)}`,
      tags: ["app:v2"],
      size: 10,
      usedBy: [],
      layers: [
        { index: 0, instruction: "ADD", createdBy: "ADD file:x in /", size: 7_000_000, createdAt: "t0", sharedWith: ["app:v1", "busybox:latest"] },
        { index: 1, instruction: "COPY", createdBy: "COPY v.txt /v.txt", size: 2, createdAt: "t1", sharedWith: [] },
      ],
    };
    expect(layerText(image, image.layers[0]!)).toBe("Layer 1 of 2: ADD, 7.0 MB, shared with app:v1, busybox:latest");
    expect(layerText(image, image.layers[1]!)).toBe("Layer 2 of 2: COPY, 2 B");
  });
});
