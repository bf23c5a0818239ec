// Crash harness: the real server (user_provided mode, tiny snapshot interval) takes upserts from
// several concurrent clients and is SIGKILLed at random moments, several times. After each restart
// every acknowledged write must be there with its vector and metadata, and every request that got
// no answer must be all there or not at all. The seed is printed; AKIDB_CRASH_SEED replays a run.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, expect, it } from "vitest";
import { waitFor } from "../control-plane/test/helpers.ts";
import { watchContract } from "./contract.ts";
import { REPO } from "./server.ts";

const ROUNDS = 4;
const WRITERS = 4;
const DIMENSION = 8;
const seed = Number(process.env.AKIDB_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: a small seeded generator, so a failing run can be replayed from its seed. */
function generator(state: number) {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = generator(seed);

interface Value {
  vector: number[];
  metadata: { writer: number; version: number };
}

/** The last acknowledged value of each id, and the requests that got no answer. */
const acked = new Map<string, Value>();
const unanswered: Array<{ docs: Array<{ id: string } & Value>; kind: "insert" | "update" }> = [];
/** Requests the kills cut off (no answer), over the whole run. */
let cutOff = 0;
/** Requests answered 200 since the last start. */
let answered = 0;

const dataDir = mkdtempSync(path.join(tmpdir(), "akidb-crash-"));
/** The server of the current round, killed at the end even when an assertion failed mid-round. */
let running: ResultPromise<{ reject: false; buffer: false }> | undefined;
afterAll(() => {
  running?.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

/** The server of the current round: every complete response it gives is checked against openapi.yaml. */
let currentUrl: string | undefined;
const contract = watchContract(() => currentUrl);
afterAll(async () => {
  expect(await contract.violations()).toEqual([]);
  expect(contract.checked).toBeGreaterThan(0);
});

async function start(): Promise<{ url: string; child: ResultPromise<{ reject: false; buffer: false }> }> {
  const child = execa(path.join(REPO, "bin/akidb"), ["serve", "--port", "0"], {
    reject: false,
    buffer: false,
    extendEnv: false,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dataDir,
      AKIDB_EMBEDDING_MODE: "user_provided",
      AKIDB_STORAGE_DATA_DIR: path.join(dataDir, "data"),
      AKIDB_STORAGE_SNAPSHOT_EVERY_OPS: "10",
    },
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  running = child;
  const url = await waitFor(
    () =>
      output
        .split("\n")
        .filter((line) => line.startsWith("{") && line.endsWith("}"))
        .map((line) => JSON.parse(line) as { msg?: string; url?: string })
        .find((record) => record.msg === "listening")?.url,
    "the listening line",
    30_000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${output}`);
  });
  currentUrl = url;
  return { url, child };
}

const vector = () => Array.from({ length: DIMENSION }, () => Math.round((random() * 2 - 1) * 1000) / 1000);

async function post(url: string, route: string, body: unknown) {
  const response = await fetch(`${url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: checked by the assertions
  return { status: response.status, body: (await response.json()) as any };
}

/** One client: sequential upserts of its own ids (new ones, or updates of acknowledged ones) until the server dies. */
async function writer(url: string, index: number, round: number): Promise<number> {
  let sent = 0;
  for (let seq = 0; ; seq++) {
    const own = [...acked.keys()].filter((id) => id.startsWith(`w${index}-`));
    const kind = own.length > 0 && random() < 0.3 ? "update" : "insert";
    const size = 1 + Math.floor(random() * 5);
    const ids =
      kind === "update"
        ? [...new Set(Array.from({ length: size }, () => own[Math.floor(random() * own.length)]!))]
        : Array.from({ length: size }, (_, j) => `w${index}-${round}-${seq}-${j}`);
    const docs = ids.map((id) => ({
      id,
      vector: vector(),
      metadata: { writer: index, version: round * 1e6 + seq },
    }));
    try {
      const response = await post(url, "/api/v1/collections/crash/upsert", { documents: docs });
      if (response.status !== 200)
        throw new Error(`upsert answered ${response.status}: ${JSON.stringify(response.body)}`);
    } catch (error) {
      // A connection cut by the kill is the retryable failure this harness expects; anything else is a bug.
      if (error instanceof Error && error.message.startsWith("upsert answered")) throw error;
      unanswered.push({ docs, kind });
      cutOff++;
      return sent;
    }
    for (const { id, ...value } of docs) acked.set(id, value);
    sent++;
    answered++;
  }
}

async function verify(url: string) {
  const ids = [...new Set([...acked.keys(), ...unanswered.flatMap((r) => r.docs.map((d) => d.id))])];
  const present = new Map<string, Value>();
  for (let i = 0; i < ids.length; i += 1000) {
    const { body } = await post(url, "/api/v1/collections/crash/get", {
      ids: ids.slice(i, i + 1000),
      limit: 1000,
      include: ["vector", "metadata"],
    });
    for (const doc of body.documents) present.set(doc.id, { vector: doc.vector, metadata: doc.metadata });
  }
  const f32 = (v: number[]) => v.map((x) => Math.fround(x));
  const problems: string[] = [];
  for (const request of unanswered) {
    // Present with this request's value: the request committed before the kill.
    const applied = request.docs.filter(
      (d) =>
        JSON.stringify(present.get(d.id)) === JSON.stringify({ vector: f32(d.vector), metadata: d.metadata }),
    );
    if (applied.length !== 0 && applied.length !== request.docs.length) {
      problems.push(
        `request ${request.docs.map((d) => d.id).join(",")} is half-present (${applied.length}/${request.docs.length})`,
      );
    }
    // An answered-or-not write that is on disk counts as acknowledged from now on.
    if (applied.length === request.docs.length)
      for (const { id, ...value } of request.docs) acked.set(id, value);
    if (request.kind === "insert" && applied.length === 0) {
      for (const d of request.docs)
        if (present.has(d.id)) problems.push(`${d.id} present with another value`);
    }
  }
  unanswered.length = 0;
  for (const [id, value] of acked) {
    const got = present.get(id);
    if (!got) problems.push(`acknowledged ${id} is missing`);
    else if (
      JSON.stringify(got) !== JSON.stringify({ vector: f32(value.vector), metadata: value.metadata })
    ) {
      problems.push(`acknowledged ${id} has ${JSON.stringify(got)}, expected ${JSON.stringify(value)}`);
    }
  }
  const collection = (await (await fetch(`${url}/api/v1/collections/crash`)).json()) as { count: number };
  expect(collection.count).toBe(acked.size);
  // The index came back too: every acknowledged vector finds its own document.
  const entries = [...acked];
  for (let i = 0; i < entries.length; i += 100) {
    const batch = entries.slice(i, i + 100);
    const { body } = await post(url, "/api/v1/collections/crash/search/batch", {
      queries: batch.map(([, value]) => ({ vector: value.vector, k: 1, include: [] })),
    });
    batch.forEach(([id], j) => {
      if (body.results[j][0]?.id !== id)
        problems.push(`search for ${id}'s vector found ${body.results[j][0]?.id}`);
    });
  }
  return problems;
}

it(`keeps every acknowledged write through ${ROUNDS} SIGKILLs under concurrent writers (seed ${seed})`, async () => {
  console.log(`collections crash test seed: ${seed} (AKIDB_CRASH_SEED=${seed} replays it)`);
  for (let round = 0; round < ROUNDS; round++) {
    const { url, child } = await start();
    if (round === 0) {
      const created = await post(url, "/api/v1/collections", {
        name: "crash",
        dimension: DIMENSION,
        metric: "l2",
      });
      expect(created.status).toBe(201);
    } else {
      expect(await verify(url), `seed ${seed}, after kill ${round}`).toEqual([]);
    }
    const writers = Array.from({ length: WRITERS }, (_, i) => writer(url, i, round));
    // Kill after a random share of the writers' work: somewhere between the first commits and a few snapshots.
    const answeredBeforeKill = 5 + Math.floor(random() * 60);
    answered = 0;
    await waitFor(() => answered >= answeredBeforeKill, "some acknowledged writes", 30_000);
    child.kill("SIGKILL");
    const sent = await Promise.all(writers);
    expect((await child).signal).toBe("SIGKILL");
    expect(sent.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }
  const { url, child } = await start();
  try {
    expect(await verify(url), `seed ${seed}, after the last kill`).toEqual([]);
    expect(acked.size).toBeGreaterThan(ROUNDS * 10);
    expect(cutOff).toBeGreaterThan(0);
  } finally {
    child.kill("SIGTERM");
    await child;
  }
}, 90_000);
