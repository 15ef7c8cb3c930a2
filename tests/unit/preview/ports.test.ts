import { describe, expect, it } from "vitest";
import { MAX_CONTAINERS, parseDockerPs, parsePortsField, summarisePorts } from "../../../sandbox-server/src/preview/ports.ts";

const ID1 = "4b56a209f99de46edbb927ddc93080ccb0b322336d73748a7f7f547aaffbb877";
const ID2 = "7bcebda731ccb8b7df4fadf365a01b363b082ff04efb14ce2a324c6809938a21";
const line = (id: string, name: string, image: string, ports: string) => [id, name, image, ports].join("\t");

describe("docker ps output", () => {
  it("reads what Docker 20.10 prints (captured from a sandbox)", () => {
    const output =
      line(ID2, "two", "shipshape/debian-base:bookworm", "") +
      "\n" +
      line(ID1, "web", "nginx", "1234/tcp, 0.0.0.0:7000-7002->7000-7002/tcp, 127.0.0.1:9000->9000/tcp, 0.0.0.0:5353->53/udp, 0.0.0.0:8080->80/tcp") +
      "\n";
    const { containers, rejectedLines } = parseDockerPs(output);
    expect(rejectedLines).toBe(0);
    expect(containers).toEqual([
      { id: ID2, name: "two", image: "shipshape/debian-base:bookworm", bindings: [] },
      {
        id: ID1,
        name: "web",
        image: "nginx",
        bindings: [
          { hostIp: "0.0.0.0", hostPort: 7000, containerPort: 7000, protocol: "tcp" },
          { hostIp: "0.0.0.0", hostPort: 7001, containerPort: 7001, protocol: "tcp" },
          { hostIp: "0.0.0.0", hostPort: 7002, containerPort: 7002, protocol: "tcp" },
          { hostIp: "127.0.0.1", hostPort: 9000, containerPort: 9000, protocol: "tcp" },
          { hostIp: "0.0.0.0", hostPort: 5353, containerPort: 53, protocol: "udp" },
          { hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, protocol: "tcp" },
        ],
      },
    ]);
  });

  it("reads IPv6 bindings as older and newer Docker print them", () => {
    expect(parsePortsField("0.0.0.0:8080->80/tcp, :::8080->80/tcp")).toEqual([
      { hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostIp: "::", hostPort: 8080, containerPort: 80, protocol: "tcp" },
    ]);
    expect(parsePortsField("[::]:8080->80/tcp, [::1]:9000->9000/tcp")).toEqual([
      { hostIp: "::", hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostIp: "::1", hostPort: 9000, containerPort: 9000, protocol: "tcp" },
    ]);
  });

  it("drops whole lines that are not what docker prints", () => {
    const bad = [
      line(ID1, "web", "nginx", "0.0.0.0:0->80/tcp"),
      line(ID1, "web", "nginx", "0.0.0.0:65536->80/tcp"),
      line(ID1, "web", "nginx", "0.0.0.0:8080->80/http"),
      line(ID1, "web", "nginx", "999.0.0.1:8080->80/tcp"),
      line(ID1, "web", "nginx", "evil.example:8080->80/tcp"),
      line(ID1, "web", "nginx", "0.0.0.0:8080->80/tcp,0.0.0.0:8081->81/tcp"),
      line(ID1, "web", "nginx", "0.0.0.0:8082-8080->80-82/tcp"),
      line(ID1, "web", "nginx", "0.0.0.0:8080-8081->80-83/tcp"),
      line(ID1, "web", "nginx", "0.0.0.0:1-65535->1-65535/tcp"),
      line(ID1, "<script>", "nginx", "0.0.0.0:8080->80/tcp"),
      line(ID1, "web", "nginx\u0007", "0.0.0.0:8080->80/tcp"),
      line(ID1, "web", "ng inx", ""),
      line("not-hex", "web", "nginx", ""),
      line(ID1, "web", "nginx", "") + "\textra",
      [ID1, "web", "nginx"].join("\t"),
      "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
    ];
    const good = line(ID2, "ok", "python:3.11-slim", "0.0.0.0:8000->8000/tcp");
    const { containers, rejectedLines } = parseDockerPs([...bad, good].join("\n"));
    expect(rejectedLines).toBe(bad.length);
    expect(containers.map((c) => c.name)).toEqual(["ok"]);
  });

  it("caps how much it reads", () => {
    const many = Array.from({ length: MAX_CONTAINERS + 5 }, (_, i) => line(ID1, `c${i}`, "nginx", "")).join("\n");
    const { containers, rejectedLines } = parseDockerPs(many);
    expect(containers).toHaveLength(MAX_CONTAINERS);
    expect(rejectedLines).toBe(5);
  });

  it("keeps the first of a legacy link's names", () => {
    expect(parseDockerPs(line(ID1, "db,web/db", "postgres", "")).containers[0]?.name).toBe("db");
  });
});

describe("the port list", () => {
  it("has one entry per TCP host port, sorted, and knows which the preview can reach", () => {
    const { containers } = parseDockerPs(
      [
        line(ID1, "web", "nginx", "0.0.0.0:8080->80/tcp, :::8080->80/tcp, 0.0.0.0:5353->53/udp"),
        line(ID2, "api", "python:3.11-slim", "127.0.0.1:9000->9000/tcp, 10.213.128.5:3000->3000/tcp, 192.168.127.1:4000->4000/tcp"),
      ].join("\n"),
    );
    expect(summarisePorts(containers, "10.213.128.5")).toEqual([
      { port: 3000, containerPort: 3000, container: "api", image: "python:3.11-slim", reachable: true },
      { port: 4000, containerPort: 4000, container: "api", image: "python:3.11-slim", reachable: false },
      { port: 8080, containerPort: 80, container: "web", image: "nginx", reachable: true },
      { port: 9000, containerPort: 9000, container: "api", image: "python:3.11-slim", reachable: false },
    ]);
  });
});
