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

const { extractVectors } = addon();
const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** JSON.parse's value, or "error". */
function parsed(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return "error";
  }
}

/** A number as a body might write it: JSON's forms, spaced, and now and then one JSON does not take. */
const numberText = fc.oneof(
  { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => JSON.stringify(x)), weight: 4 },
  { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => x.toExponential()), weight: 2 },
  {
    arbitrary: fc
      .float({ noNaN: true, noDefaultInfinity: true })
      .map((x) => float32Json(Float32Array.of(x)).slice(1, -1)),
    weight: 4,
  },
  { arbitrary: fc.integer().map(String), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      ...["-0", "0e0", "1E+2", "1e400", "-1e400", "1e-400", "4.9e-324", "01", "1.", ".5", "+1", "1e", "-"],
      ...["NaN", "0x1", "true", '"1"', "[1]", "null"],
    ),
    weight: 1,
  },
);
const spaced = (text: string) =>
  fc
    .tuple(fc.constantFrom("", "", " ", "\n", "\t ", "\u00a0"), fc.constantFrom("", "", " ", "\r\n"))
    .map(([a, b]) => `${a}${text}${b}`);
/** A `vector` value: mostly `dimension` numbers, sometimes one more or less, or another value. */
const vectorText = (dimension: number) =>
  fc.oneof(
    {
      arbitrary: fc
        .array(numberText.chain(spaced), { minLength: dimension - 1, maxLength: dimension + 1 })
        .map((items) => `[${items.join(",")}]`),
      weight: 6,
    },
    { arbitrary: fc.json({ maxDepth: 2 }), weight: 1 },
    { arbitrary: fc.constantFrom('"AAAAAA=="', "{}", "[]", '{"vector":[1,2]}'), weight: 1 },
  );
/**
 * A body with vectors, now and then with what makes the reader take nothing (a key twice, an
 * escaped key): an upsert's (`documents`), a batch search's (`queries`), or a search's own `vector`
 * (list null).
 */
const bodyText = (dimension: number) => {
  const hazard = fc.oneof(
    { arbitrary: fc.constant(""), weight: 12 },
    { arbitrary: vectorText(dimension).map((vector) => `"vector":${vector}`), weight: 1 },
    { arbitrary: vectorText(dimension).map((vector) => `"vect\\u006fr":${vector}`), weight: 1 },
    { arbitrary: fc.json({ maxDepth: 1 }).map((value) => `"x":${value}`), weight: 2 },
  );
  const document = fc.oneof(
    {
      arbitrary: fc
        .tuple(
          fc.option(fc.string({ maxLength: 3 }).map((id) => `"id":${JSON.stringify(id)}`)),
          vectorText(dimension).map((vector) => `"vector":${vector}`),
          fc.option(fc.json({ maxDepth: 2 }).map((metadata) => `"metadata":${metadata}`)),
          hazard,
        )
        .map((members) => `{${members.filter((member) => member).join(",")}}`),
      weight: 8,
    },
    { arbitrary: fc.json({ maxDepth: 1 }), weight: 1 },
  );
  const other = (list: string) =>
    fc.oneof(
      { arbitrary: fc.constant(""), weight: 8 },
      { arbitrary: fc.json({ maxDepth: 2 }).map((value) => `"x":${value}`), weight: 1 },
      { arbitrary: fc.constant(`"${list}":[]`), weight: 1 },
    );
  const listed = fc.constantFrom("documents", "queries").chain((list) =>
    fc
      .tuple(fc.array(document, { maxLength: 5 }), other(list), fc.boolean())
      .map(([documents, extra, first]) => {
        const members = [`"${list}":[${documents.join(",")}]`, extra].filter((member) => member);
        return { text: `{${(first ? members : members.reverse()).join(",")}}`, list: list as string | null };
      }),
  );
  return fc.oneof(
    listed,
    document.map((text) => ({ text, list: null })),
  );
};
/** A body of vectors of `dimension`, or that body with one character inserted or removed (mostly no longer JSON). */
const bodies = fc.integer({ min: 1, max: 3 }).chain((dimension) =>
  fc
    .tuple(
      bodyText(dimension),
      fc.nat(),
      fc.constantFrom("", "[", "]", "{", "}", ",", ":", '"', "\\", "0", "-", ".", "e", " "),
      fc.integer({ min: 0, max: 3 }),
    )
    .map(([{ text, list }, at, char, broken]) => {
      if (broken > 0) return { text, list, dimension };
      const i = at % (text.length + 1);
      const edited =
        char === "" ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + char + text.slice(i);
      return { text: edited, list, dimension };
    }),
);

describe("extractVectors (native/json.h)", () => {
  // The oracle is JSON.parse of the body as sent: the text left parses exactly when the body does,
  // and with the taken vectors put back it is the body's value, each taken number as Math.fround
  // of JSON.parse's. Only list[i].vector arrays (the body's own vector, without a list) of
  // `dimension` numbers are taken.
  it("gives what JSON.parse and a Float32Array give, for any body, JSON or not", () => {
    type Holder = { vector: unknown };
    const holders = (body: Record<string, unknown>, list: string | null) =>
      list === null ? [body as Holder] : (body[list] as Holder[]);
    fc.assert(
      fc.property(bodies, ({ text, list, dimension }) => {
        const extracted = extractVectors(encode(text), dimension, list);
        if (!extracted) return;
        const expected = parsed(text) as Record<string, unknown> | "error";
        const rest = parsed(decode(extracted.text)) as typeof expected;
        expect(rest === "error").toBe(expected === "error");
        if (expected === "error" || rest === "error") return;
        extracted.documents.forEach((index, i) => {
          const sent = holders(expected, list)[index]!.vector as number[];
          expect(sent).toHaveLength(dimension);
          holders(expected, list)[index]!.vector = sent.map(Math.fround);
          holders(rest, list)[index]!.vector = Array.from(
            extracted.vectors.subarray(i * dimension, (i + 1) * dimension),
          );
        });
        expect(rest).toStrictEqual(expected);
      }),
      { numRuns: 4000 },
    );
  });

  // The reader settles most numbers without a full decimal conversion (json.h, float_of_decimal):
  // short ones exactly in doubles, 17-digit ones from a 64-bit product, which must fall back where
  // a double lands near halfway between two floats (rounding twice can differ from rounding once).
  it("reads every number as Math.fround(JSON.parse), also beside a float32's rounding midpoints", () => {
    const bits = new BigUint64Array(1);
    const double = new Float64Array(bits.buffer);
    /** A double `steps` ulps from the midpoint of the float32 of `bits32` and the next one up. */
    const nearMidpoint = (bits32: number, steps: number) => {
      const low = new Float32Array(new Uint32Array([bits32]).buffer)[0]!;
      const high = new Float32Array(new Uint32Array([bits32 + 1]).buffer)[0]!;
      double[0] = (low + high) / 2;
      bits[0] = bits[0]! + BigInt(steps);
      return double[0];
    };
    const text = fc.oneof(
      fc
        .tuple(
          fc.integer({ min: 0x00800000, max: 0x7f7ffffe }),
          fc.integer({ min: -4, max: 4 }),
          fc.integer({ min: 17, max: 21 }),
        )
        .map(([b, steps, digits]) => nearMidpoint(b, steps).toPrecision(digits)),
      fc
        .tuple(
          fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e30, max: 1e30 }),
          fc.integer({ min: 1, max: 21 }),
        )
        .map(([x, digits]) => x.toPrecision(digits)),
      fc
        .double({ noNaN: true, noDefaultInfinity: true, min: -1e30, max: 1e30 })
        .map((x) => JSON.stringify(x)),
    );
    fc.assert(
      fc.property(fc.array(text, { minLength: 64, maxLength: 64 }), (numbers) => {
        const extracted = extractVectors(encode(`{"vector":[${numbers.join(",")}]}`), 64, null);
        expect(extracted).not.toBeNull();
        expect(Array.from(extracted!.vectors)).toEqual(
          numbers.map((n) => Math.fround(JSON.parse(n) as number)),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it("takes the vectors it can, and leaves every other array (and an ambiguous body) to JSON.parse", () => {
    const taken = extractVectors(
      encode(
        '{"documents":[{"id":"a","vector":[1,2.5]},{"vector":[1e400,1]},{"vector":[0.1, -0 ]},3,{"vector":"AAAA"}]}',
      ),
      2,
      "documents",
    );
    expect(taken && decode(taken.text)).toBe(
      '{"documents":[{"id":"a","vector": 0 },{"vector":[1e400,1]},{"vector": 0 },3,{"vector":"AAAA"}]}',
    );
    expect(Array.from(taken!.documents)).toEqual([0, 2]);
    expect(Array.from(taken!.vectors)).toEqual([1, 2.5, Math.fround(0.1), -0]);
    // metadata's own "vector" is metadata; a wrong length is the request's check to name.
    const nested = extractVectors(
      encode('{"documents":[{"metadata":{"vector":[1,2]},"vector":[3,4,5]}]}'),
      2,
      "documents",
    );
    expect(nested).toBeNull();
    // Without a list, the body's own vector alone: a search's, never one inside its filter.
    const own = extractVectors(encode('{"filter":{"vector":[1,2]},"vector":[3,4],"k":3}'), 2, null);
    expect(own && decode(own.text)).toBe('{"filter":{"vector":[1,2]},"vector": 0 ,"k":3}');
    expect(Array.from(own!.documents)).toEqual([0]);
    expect(Array.from(own!.vectors)).toEqual([3, 4]);
    expect(extractVectors(encode('{"queries":[{"vector":[1,2]}]}'), 2, null)).toBeNull();
    expect(extractVectors(encode('{"vector":[1,2],"vector":[3,4]}'), 2, null)).toBeNull();
    const queries = extractVectors(
      encode('{"queries":[{"vector":[1,2]},{"text":"a"},{"vector":[5,6]}]}'),
      2,
      "queries",
    );
    expect(Array.from(queries!.documents)).toEqual([0, 2]);
    // Numbers JSON does not take stay in the text, for JSON.parse to refuse.
    for (const notJson of ["01", "1.", ".5", "+1", "1e", "-", "NaN", "0x1", "1_0"]) {
      expect(extractVectors(encode(`{"documents":[{"vector":[${notJson},2]}]}`), 2, "documents")).toBeNull();
    }
    for (const ambiguous of [
      '{"documents":[{"vector":[1,2],"vector":[3,4]}]}',
      '{"documents":[{"vect\\u006fr":[1,2],"vector":[3,4]}]}',
      '{"documents":[{"vector":[1,2]}],"documents":[]}',
      '[{"vector":[1,2]}]',
      '\ufeff{"documents":[{"vector":[1,2]}]}',
    ]) {
      expect(extractVectors(encode(ambiguous), 2, "documents")).toBeNull();
    }
  });
});
