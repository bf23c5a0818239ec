import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { setImmediate } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { addon } from "../src/native.ts";

// scripts/build-native.sh builds the check beside the addon, with the same compiler.
const CHECK = path.resolve(import.meta.dirname, "..", "native", "build", "kernels-check");

describe("distance kernels (native/distance.h)", () => {
  it("agree with the portable loops at every level this CPU runs", () => {
    const out = execFileSync(CHECK, { encoding: "utf8" });
    const levels = out.trim().split("\n");
    expect(levels[0]).toBe("portable: agrees");
    // Every level up to the one the index picks was checked, VNNI's sketch kernel included.
    const simd = addon().simd;
    const picked = simd.replace("+vnni", "");
    expect(levels.map((line) => line.split(":")[0])).toContain(picked);
    if (simd.endsWith("+vnni")) expect(levels.at(-1)).toBe("avx512: agrees (and vnni)");
  });
});

/** The nice value of each thread of this process (/proc/self/task/<tid>/stat, field 19), by tid. */
function threadNices(): Map<string, number> {
  const nices = new Map<string, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      nices.set(tid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return nices;
}

// Inserts into a graph until told to stop (shared[0] = 1), on 2 threads per addMany; shared[1]
// counts the calls made.
const INSERTING = `
const { workerData } = require("node:worker_threads");
import(workerData.native).then(({ addon }) => {
  const index = new (addon().HnswIndex)({ dimensions: 64, metric: "l2sq", scalar: "f32", M: 16, efConstruction: 200 });
  const shared = new Int32Array(workerData.shared);
  const vectors = Float32Array.from({ length: 256 * 64 }, (_, i) => Math.sin(i * 0.37));
  for (let round = 0; Atomics.load(shared, 0) === 0; round++) {
    const keys = Float64Array.from({ length: 256 }, (_, i) => round * 256 + i);
    index.addMany(keys, vectors, 2);
    Atomics.add(shared, 1, 1);
  }
});
`;

describe.runIf(process.platform === "linux")("addMany's threads (native/addon.cc)", () => {
  it("insert at nice + 10, leaving the calling thread's priority alone", async () => {
    const before = threadNices();
    const lowered = Math.min(19, Math.max(...before.values()) + 10);
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const native = new URL("../src/native.ts", import.meta.url).href;
    const worker = new Worker(INSERTING, { eval: true, workerData: { native, shared: shared.buffer } });
    const failed = new Promise<never>((_, reject) => worker.once("error", reject));
    // The inserting threads come and go with each call: look until one is seen, for 20 calls at most.
    let seen = false;
    while (!seen && Atomics.load(shared, 1) < 20) {
      await Promise.race([setImmediate(), failed]);
      seen = [...threadNices()].some(([tid, nice]) => !before.has(tid) && nice === lowered);
    }
    Atomics.store(shared, 0, 1);
    await worker.terminate();
    expect(seen).toBe(true);
    // Every thread that was here before (this one, Node's own) kept its priority.
    for (const [tid, nice] of threadNices()) if (before.has(tid)) expect(nice).toBe(before.get(tid));
  });
});
