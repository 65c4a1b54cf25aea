/**
 * `npm run keys -- <command>`: manage API keys in the database named by DATABASE_URL.
 *
 *   create --namespace <ns> --scopes read,write[,admin] [--name <label>]   prints the key (shown once)
 *   list   --namespace <ns>
 *   revoke --namespace <ns> --id <key id>
 * @module
 */
import { parseArgs } from 'node:util';
import { createApiKey, listApiKeys, revokeApiKey, type Scope } from '../postgres/api-keys.js';
import { connectDatabase } from '../postgres/connect.js';
import { migrate } from '../postgres/migrations.js';

const USAGE = `usage: npm run keys -- create --namespace <ns> --scopes read,write[,admin] [--name <label>]
       npm run keys -- list --namespace <ns>
       npm run keys -- revoke --namespace <ns> --id <key id>
(DATABASE_URL names the database; DB_SCHEMA its schema, if not the default.)`;

/** Runs one CLI command; returns the process exit code. Output goes through `print`. */
export async function runKeysCli(argv: string[], env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{ options: { namespace: { type: 'string' }; scopes: { type: 'string' }; name: { type: 'string' }; id: { type: 'string' } }; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { namespace: { type: 'string' }, scopes: { type: 'string' }, name: { type: 'string' }, id: { type: 'string' } },
    });
  } catch (err) {
    print(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const [command] = parsed.positionals;
  const { namespace, scopes, name, id } = parsed.values;
  if (!env.DATABASE_URL || !namespace || !['create', 'list', 'revoke'].includes(command ?? '') || (command === 'revoke' && !id) || (command === 'create' && !scopes)) {
    print(env.DATABASE_URL ? USAGE : `Set DATABASE_URL to the cacheness database.\n${USAGE}`);
    return 2;
  }
  const sql = connectDatabase(env.DATABASE_URL, { schema: env.DB_SCHEMA, connectTimeoutSeconds: 35 });
  try {
    await migrate(sql);
    if (command === 'create') {
      const { key, info } = await createApiKey(sql, { namespace, scopes: (scopes as string).split(',').map((s) => s.trim()) as Scope[], name });
      print(`${key}\n(key id ${info.keyId}, namespace ${info.namespace}, scopes ${info.scopes.join(',')}; store it now: it is not shown again)`);
    } else if (command === 'list') {
      for (const k of await listApiKeys(sql, namespace)) print(`${k.keyId}  ${k.scopes.join(',').padEnd(16)} ${k.revokedAt ? 'revoked' : 'active '}  ${k.name}`);
    } else {
      const revoked = await revokeApiKey(sql, namespace, id as string);
      print(revoked ? `revoked ${id}` : `no active key ${id} in namespace ${namespace}`);
      return revoked ? 0 : 1;
    }
    return 0;
  } catch (err) {
    print(`error: ${(err as Error).message}`);
    return 1;
  } finally {
    await sql.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runKeysCli(process.argv.slice(2), process.env, (line) => console.log(line));
}
