// The publishable build (scripts/build-sdk.sh): plain JavaScript that runs without type stripping,
// declarations a strict consumer type-checks against, and nothing from Node in the shipped code.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REPO = path.resolve(import.meta.dirname, "../..");
// Under the repository, so that the build's imports (ky, openapi-fetch) resolve as after an install.
const OUT = path.join(REPO, ".cache", `sdk-build-${process.pid}`);
const PACKAGE = path.join(OUT, "package");

beforeAll(async () => {
  await execa(path.join(REPO, "scripts/build-sdk.sh"), [PACKAGE]);
}, 60_000);
afterAll(() => rmSync(OUT, { recursive: true, force: true }));

describe("scripts/build-sdk.sh", () => {
  it("ships JavaScript with no Node built-ins and a package.json that exports it", () => {
    const files = readdirSync(PACKAGE);
    expect(files).toEqual(expect.arrayContaining(["index.js", "index.d.ts", "README.md", "package.json"]));
    for (const file of files.filter((name) => name.endsWith(".js"))) {
      const source = readFileSync(path.join(PACKAGE, file), "utf8");
      expect(source, file).not.toMatch(/from "node:|require\(|\bprocess\.|\bBuffer\b/);
      expect(source, file).not.toMatch(/from "\.\/[^"]+\.ts"/);
    }
    const pkg = JSON.parse(readFileSync(path.join(PACKAGE, "package.json"), "utf8")) as { exports: unknown };
    expect(pkg.exports).toEqual({ ".": { types: "./index.d.ts", default: "./index.js" } });
  });

  it("runs in Node without type stripping", async () => {
    const script = `
      const sdk = await import(${JSON.stringify(path.join(PACKAGE, "index.js"))});
      const bytes = new Uint8Array(new Float32Array([1.5, -2]).buffer);
      const vector = sdk.decodeBase64Vector(btoa(String.fromCharCode(...bytes)));
      const akidb = sdk.createAkiDB({ baseUrl: "http://127.0.0.1:1" });
      console.log(JSON.stringify([Array.from(vector), typeof akidb.collections.create, new sdk.AkiDBError({ status: 400, type: "t", code: null, message: "m", param: null }).name]));
    `;
    const result = await execa(process.execPath, [
      "--no-experimental-strip-types",
      "--input-type=module",
      "-e",
      script,
    ]);
    expect(JSON.parse(result.stdout)).toEqual([[1.5, -2], "function", "AkiDBError"]);
  });

  it("gives a strict TypeScript consumer the contract's types", { timeout: 60_000 }, async () => {
    const consumer = path.join(OUT, "consumer");
    mkdirSync(consumer, { recursive: true });
    writeFileSync(
      path.join(consumer, "use.ts"),
      [
        `import { createAkiDB, type SearchResult } from "../package/index.js";`,
        `const akidb = createAkiDB({ baseUrl: "http://127.0.0.1:8080" });`,
        `export const vectors: Promise<Float32Array[]> = akidb.embeddings`,
        `  .create({ input: ["a"], input_type: "query" })`,
        `  .then((result) => result.data.map((item) => item.embedding));`,
        `export const hits: Promise<SearchResult> = akidb.collections.collection("c").search({ text: "a", k: 3 });`,
        `// @ts-expect-error input is required`,
        `void akidb.embeddings.create({ model: "m" });`,
        "",
      ].join("\n"),
    );
    const tsc = path.join(REPO, "node_modules/typescript/bin/tsc");
    const options = [
      "--noEmit",
      "--strict",
      "--skipLibCheck",
      "false",
      "--target",
      "es2023",
      "--lib",
      "es2023,dom",
    ];
    const result = await execa(
      process.execPath,
      [
        tsc,
        ...options,
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        path.join(consumer, "use.ts"),
      ],
      { reject: false },
    );
    expect(result.stdout).toBe("");
    expect(result.exitCode).toBe(0);
  });
});
