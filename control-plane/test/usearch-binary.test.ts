import { createRequire } from "node:module";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { usearchBinary, usearchPackageDir } from "../src/collections/usearch-binary.ts";

// usearch's own loader, resolved from usearch's directory (it is usearch's dependency, not ours).
const loader = createRequire(path.join(usearchPackageDir(), "package.json"))("node-gyp-build") as {
  path(dir: string): string;
};

describe("usearchBinary", () => {
  const saved = process.env.PREBUILDS_ONLY;
  afterEach(() => {
    if (saved === undefined) delete process.env.PREBUILDS_ONLY;
    else process.env.PREBUILDS_ONLY = saved;
  });

  it("names the binary usearch's loader picks: a source build under build/Release, else the prebuilt", () => {
    const picked = loader.path(usearchPackageDir());
    const source = picked.includes(`${path.sep}build${path.sep}Release${path.sep}`);
    expect(usearchBinary()).toMatch(/^\d+\.\d+\.\d+ \((source build|prebuilt)\)$/);
    expect(usearchBinary().endsWith(source ? "(source build)" : "(prebuilt)")).toBe(true);
  });

  it("says prebuilt when PREBUILDS_ONLY sends the loader to the package's prebuilds", () => {
    process.env.PREBUILDS_ONLY = "1";
    expect(usearchBinary()).toMatch(/\(prebuilt\)$/);
  });
});
