// Reads a Sluice lake with DuckDB's Node.js package, knowing nothing of
// Sluice but the layout: hive-partitioned Parquet under <lake>/<table>/.
// Usage: node read.js LAKE_DIR 'SQL with {events} and {bad}'...
// Prints one JSON array of result rows per query.
import { DuckDBInstance } from '@duckdb/node-api';

const [lake, ...queries] = process.argv.slice(2);
const table = (name) =>
  `read_parquet('${lake}/${name}/*/*/*.parquet', hive_partitioning = true, union_by_name = true)`;
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
await conn.run("SET TimeZone = 'UTC'");
const out = [];
for (const q of queries) {
  const sql = q.replaceAll('{events}', table('events')).replaceAll('{bad}', table('bad'));
  const reader = await conn.runAndReadAll(sql);
  out.push(reader.getRowsJson());
}
console.log(JSON.stringify(out));
