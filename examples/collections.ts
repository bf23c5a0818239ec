// Creates a collection, upserts texts (the server embeds them) and searches it, with @akidb/sdk.
//   node examples/collections.ts [collection-name]
// Talks to AKIDB_URL (default http://127.0.0.1:8080) with AKIDB_API_KEY when the server needs one.
import { AkiDBError, createAkiDB } from "@akidb/sdk";

const akidb = createAkiDB({
  baseUrl: process.env.AKIDB_URL ?? "http://127.0.0.1:8080",
  apiKey: process.env.AKIDB_API_KEY,
});
const name = process.argv[2] ?? "example-articles";

// Start from an empty collection each run.
await akidb.collections.delete(name).catch((error: unknown) => {
  if (!(error instanceof AkiDBError && error.status === 404)) throw error;
});
const articles = await akidb.collections.create({ name });
console.log(
  `created ${articles.name}: ${articles.info?.dimension} dimensions, model ${articles.info?.model}`,
);

const texts = [
  { text: "AkiDB keeps every vector in RAM and its log on disk.", topic: "storage" },
  { text: "Snapshots are written atomically, then the log is compacted.", topic: "storage" },
  { text: "The control plane batches concurrent embedding requests.", topic: "embedding" },
  { text: "Queries get the model's query prompt, documents the document prompt.", topic: "embedding" },
  { text: "Filters use Chroma's syntax: $eq, $in, $gte, $and, $or.", topic: "search" },
];
const { ids, embeddings_generated } = await articles.upsert(
  texts.map(({ text, topic }, i) => ({ id: `article-${i}`, text, metadata: { topic } })),
);
console.log(`upserted ${ids.length} documents (${embeddings_generated} embedded by the server)`);

const query = "Where are the vectors kept?";
const { results } = await articles.search({ text: query, k: 3 });
console.log(`nearest to "${query}":`);
for (const hit of results) console.log(`  ${hit.score.toFixed(3)}  ${hit.id}  ${hit.text}`);

const storage = await articles.search({ text: query, k: 5, filter: { topic: "storage" } });
console.log(`with filter topic=storage: ${storage.results.map((hit) => hit.id).join(", ")}`);

console.log(`count: ${(await akidb.collections.get(name)).info?.count}`);
