/**
 * The failover part of bench/results/chaos.md (E: Redis Cluster, F: Sentinel), and how it joins
 * the single-server part (A–D). Each part has its own heading, run description and notes, so a run
 * of only some scenarios (`CHAOS_SCENARIOS=cluster-kill,sentinel-kill`) replaces its own part and
 * keeps the other as the last run that made it left it.
 */
import { CLUSTER_NODE_TIMEOUT_MS, SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS } from './topologies.js'
import { FAILOVER_SCENARIOS, kitMetricsNote, renderScenario, type ReportContext, type RunResult } from './stats.js'
import type { PlotLabels } from './plot.js'

export const FAILOVER_HEADING = '## Chaos on Redis Cluster and Sentinel: a master killed under load, kit vs the raw peer stack'

export const FAILOVER_PLOT_LABELS: PlotLabels = {
  title: 'Chaos on Redis Cluster (E) and Sentinel (F): a master killed, kit vs raw peer stack',
  shaded: 'from the kill -9 of the master until the topology reports the new master (a replica promoted)',
}

export function renderFailoverReport(runs: readonly RunResult[], context: ReportContext): string {
  const first = runs[0]
  const lines: string[] = [
    FAILOVER_HEADING,
    '',
    `The load of A–D on a replicated topology: autocannon, ${context.connections} connections, ${context.durationS} s per run, request timeout ${context.timeoutS} s; `
    + `each connection cycles \`GET /api/scans/host<n>.example\` (${context.targets} targets, warmed), \`GET /api/visits\`, \`GET /me\`, all with one logged-in session cookie. `
    + (context.jobRate > 0 ? `Alongside, a job stream: ${context.jobRate} \`POST /api/scans/s<n>.jobs.example/jobs\` per second, a new target (job id) each, open-loop. ` : '')
    + 'Each contender gets a fresh topology of real redis-server processes on loopback (test/helpers/cluster.ts, test/helpers/sentinel.ts): '
    + `E: a Redis Cluster of 3 masters with 1 replica each, \`cluster-node-timeout\` ${CLUSTER_NODE_TIMEOUT_MS} ms; `
    + `F: a master, one replica and 3 sentinels (quorum 2), \`down-after-milliseconds\` ${SENTINEL_DOWN_AFTER_MS}, \`failover-timeout\` ${SENTINEL_FAILOVER_TIMEOUT_MS}. `
    + 'No persistence (`appendonly no`, as the tests run them): only replication carries data across the failover. '
    + `At ${(first ? (first.faultAt - first.t0) / 1000 : 0).toFixed(1)} s the master serving \`visitor_count\` (in E one of three shards; the session, cache and rate-limit keys spread over all three) is killed with kill -9 and not restarted. `
    + 'The outage phase lasts until the topology reports the new master, polled every 50 ms: in E every surviving node says `cluster_state:ok` and names the same former replica as owner of the killed master\'s slots; '
    + 'in F every sentinel answers `SENTINEL get-master-addr-by-name` with the replica, and it answers `ROLE` master. '
    + `Code: ${context.source}.`,
    '',
    'Cells are **kit / peer**, each on its own topology (so the fault and the report of the new master differ a little between the two). '
    + `Failures = any 5xx, any answer slower than the ${context.timeoutS} s client timeout, socket error, and any 401 or 429. "Back on Redis" counts from the report of the new master, negative when the server got there first.`,
    '',
  ]
  for (const scenario of FAILOVER_SCENARIOS) lines.push(...renderScenario(scenario, runs, context))
  lines.push(
    'Notes:',
    '- kit = `examples/server.ts` as in A–D, configured only by the environment: `REDIS_CLUSTER_NODES` (every node of the cluster) in E, `REDIS_SENTINELS` + `REDIS_SENTINEL_NAME` in F; the kit\'s defaults otherwise.',
    '- peer = `bench/peer-server.ts`, set up as each library documents for the topology, ioredis\' defaults otherwise (offline queue on, `maxRetriesPerRequest` 20, no `commandTimeout`). '
    + 'E (`PEER_CLUSTER_NODES`): one `new Cluster(nodes)` for apicache (with the same `connected` getter as in A–D), connect-redis 8 and the BullMQ Queue; '
    + 'rate-limit-redis with `sendCommandCluster: ({ command }) => cluster.call(...command)` (ioredis routes a command by its own keys, so the `key` hint goes unused and a keyless `SCRIPT LOAD` reaches a random master); '
    + 'the BullMQ queue named `{scan}` (its keys `bull:{scan}:…` in one slot), its Worker on `new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null } })`. '
    + 'F (`PEER_SENTINELS`, `PEER_SENTINEL_NAME`): `new Redis({ sentinels, name })` for everything, the Worker\'s with `maxRetriesPerRequest: null`.',
    '- Setup requests (login, warm-up) are repeated until they succeed (the table counts the failed ones), so that a server that needs a few tries to start still gets measured.',
    `- Detection and "back" are read by polling every ${context.pollIntervalMs} ms as in A–D (kit: \`GET /health\`; peer: \`GET /health/redis\`, which PINGs, abandoned after ${context.peerPollTimeoutMs} ms). `
    + 'On a Cluster the peer\'s PING goes to any master, so it may stay 200 while one shard is gone.',
    '- `visitor_count` is read after the run from the master that serves it then (the promoted replica). Redis replicates asynchronously: increments the killed master acknowledged '
    + 'but had not yet sent to its replica are gone, and show as "outside" below the allowed range; neither server can see that (`min-replicas-to-write` / `WAIT` narrow it). '
    + 'The job stream\'s keys (`job:{scan}:<id>` for the kit on a Cluster, `bull:{scan}:<id>` for the peer; `job:scan:` / `bull:scan:` behind Sentinel) are read from the master serving them after the run.',
    `- Redis' own stalls: \`latency-monitor-threshold\` ${context.redisLatencyThresholdMs} ms on every data node, \`LATENCY LATEST\` read from all of them before the kill and from the survivors after the run.`,
    `- Requests still unanswered when the load stopped are not counted: ${runs.map((r) => `${r.contender} ${r.scenario} ${r.inFlightAtEnd}`).join(', ')}.`,
    `- Machine: ${context.cpus} CPUs shared with other work (the load generator, the topology's 5–6 redis-server processes and the server under test); 1-minute load average at the start of each run: `
    + `${runs.map((r) => `${r.contender} ${r.scenario} ${r.loadAverage.toFixed(1)}`).join(', ')}.`,
    ...kitMetricsNote(runs),
    `- Plot: [${context.svgName}](${context.svgName}) (p99 latency and OK req/s per 500 ms, from the kill until the new master was reported shaded${runs.some((r) => r.kitMetrics) ? '; a strip along the top of each panel: the kit degraded, by its polled `express_redis_kit_state`' : ''}).`,
    '',
  )
  return lines.join('\n')
}

/**
 * chaos.md from its two parts: each part this run rendered replaces the same part of the report
 * already there (`existing`); a part it did not render is kept from `existing`.
 */
export function mergeReport(existing: string | undefined, singleServer: string | undefined, failover: string | undefined): string {
  const at = existing?.indexOf(FAILOVER_HEADING) ?? -1
  const keptSingle = existing === undefined ? undefined : at < 0 ? existing : existing.slice(0, at)
  const keptFailover = existing !== undefined && at >= 0 ? existing.slice(at) : undefined
  const parts = [singleServer ?? keptSingle, failover ?? keptFailover].map((part) => part?.trim()).filter((part): part is string => !!part)
  return `${parts.join('\n\n')}\n`
}
