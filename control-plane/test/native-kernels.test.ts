import { execFileSync } from "node:child_process";
import path from "node:path";
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
