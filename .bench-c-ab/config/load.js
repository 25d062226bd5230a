import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { interpolate } from './interpolate.js';
import { configSchema } from './schema.js';
import { checkNames, checkReferences } from './references.js';
export class ConfigInvalidError extends Error {
    errors;
    constructor(source, errors) {
        super(`${source}: invalid config\n${errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}`);
        this.name = 'ConfigInvalidError';
        this.errors = errors;
    }
}
/** Reads, parses (YAML, of which JSON is a subset), interpolates and validates a config file. */
export function loadConfigFile(file, env = process.env) {
    let text;
    try {
        text = readFileSync(file, 'utf8');
    }
    catch (err) {
        return { ok: false, errors: [{ path: '(file)', message: `cannot read ${file}: ${err.message}` }] };
    }
    return loadConfigText(text, env);
}
export function loadConfigText(text, env = process.env) {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
        return { ok: false, errors: doc.errors.map((e) => ({ path: '(document)', message: e.message.split('\n')[0] })) };
    }
    const raw = doc.toJS() ?? {};
    return validateConfig(raw, env);
}
/** Validates an already parsed document (the admin API and other sources use this). */
export function validateConfig(raw, env = process.env) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        return { ok: false, errors: [{ path: '(root)', message: 'must be a mapping of keys such as listeners, upstreams, routes' }] };
    }
    const envErrors = [];
    const interpolated = interpolate(raw, env, envErrors);
    if (envErrors.length > 0)
        return { ok: false, errors: envErrors };
    const parsed = configSchema.safeParse(interpolated);
    const nameErrors = checkNames(interpolated);
    if (!parsed.success) {
        const errors = formatIssues(parsed.error.issues);
        const seen = new Set(errors.map((e) => e.path));
        return { ok: false, errors: [...errors, ...nameErrors.filter((e) => !seen.has(e.path))] };
    }
    const refErrors = [...nameErrors, ...checkReferences(parsed.data)];
    if (refErrors.length > 0)
        return { ok: false, errors: refErrors };
    return { ok: true, config: parsed.data };
}
export function formatPath(path) {
    let out = '';
    for (const p of path) {
        if (typeof p === 'number')
            out += `[${p}]`;
        else
            out += out === '' ? String(p) : `.${String(p)}`;
    }
    return out || '(root)';
}
function formatIssues(issues) {
    const errors = [];
    for (const issue of issues) {
        if (issue.code === 'unrecognized_keys') {
            for (const key of issue.keys)
                errors.push({ path: formatPath([...issue.path, key]), message: 'unknown key' });
        }
        else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
            // Report the branch that got furthest: the one with the deepest issue path.
            // Paths inside a branch are relative to the union.
            const best = issue.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a));
            const nested = formatIssues(best.map((i) => ({ ...i, path: [...issue.path, ...i.path] })));
            errors.push(...(depth(best) > 0 ? nested : [{ path: formatPath(issue.path), message: issue.message }]));
        }
        else if (issue.code === 'invalid_key') {
            // A record key that failed its own check: say why, under the key's path.
            for (const inner of issue.issues)
                errors.push({ path: formatPath(issue.path), message: inner.message });
        }
        else {
            errors.push({ path: formatPath(issue.path), message: issue.message });
        }
    }
    return errors;
}
function depth(issues) {
    return issues.reduce((d, i) => Math.max(d, i.path.length, i.code === 'unrecognized_keys' ? i.path.length + 1 : 0), 0);
}
//# sourceMappingURL=load.js.map