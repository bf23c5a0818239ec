import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addon } from "../src/native.ts";

const { float32Json } = addon();

describe("float32Json (native/json.h)", () => {
  it("writes JSON whose every value reads back as the same float32", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ noDefaultInfinity: true, noNaN: true }), { maxLength: 64 }),
        (values) => {
          const vector = Float32Array.from(values);
          const back = JSON.parse(float32Json(vector)) as number[];
          expect(back).toHaveLength(vector.length);
          back.forEach((value, i) => {
            expect(Object.is(Math.fround(value), vector[i])).toBe(true);
          });
        },
      ),
    );
  });

  it("handles the edges of float32: extremes, subnormals, signed zero", () => {
    const edges = Float32Array.of(
      3.4028234663852886e38,
      -3.4028234663852886e38,
      1.1754943508222875e-38,
      1e-45,
      -0,
      0,
    );
    const text = float32Json(edges);
    expect(text).toBe("[3.4028235e+38,-3.4028235e+38,1.1754944e-38,1e-45,-0,0]");
    expect((JSON.parse(text) as number[]).map(Math.fround)).toEqual(Array.from(edges));
  });

  it("writes a value in at most as many characters as JSON.stringify of the widened number", () => {
    const vector = Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i) * 0.1);
    const native = float32Json(vector);
    expect(native.length).toBeLessThan(JSON.stringify(Array.from(vector)).length);
    expect(float32Json(new Float32Array(0))).toBe("[]");
  });

  it("refuses a value that JSON cannot hold, and anything but a Float32Array", () => {
    expect(() => float32Json(Float32Array.of(1, Number.NaN))).toThrow(/value 1 is not finite/);
    expect(() => float32Json(Float32Array.of(Number.POSITIVE_INFINITY))).toThrow(/value 0 is not finite/);
    expect(() => float32Json(new Float64Array(2) as unknown as Float32Array)).toThrow(
      /must be a Float32Array/,
    );
  });
});
