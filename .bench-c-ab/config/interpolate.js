/**
 * `${NAME}` and `${NAME:-default}` interpolation over the string values of a
 * parsed document (never over the raw text, so a value cannot inject YAML
 * structure). `$${` stands for a literal `${`.
 */
const REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
export function interpolate(value, env, errors, path = '') {
    if (typeof value === 'string') {
        if (!value.includes('${'))
            return value;
        return value.replace(REF, (whole, name, fallback) => {
            if (whole === '$${')
                return '${';
            const v = env[name];
            if (v !== undefined && v !== '')
                return v;
            if (fallback !== undefined)
                return fallback;
            errors.push({ path: path || '(root)', message: `environment variable ${name} is not set` });
            return '';
        });
    }
    if (Array.isArray(value))
        return value.map((v, i) => interpolate(v, env, errors, `${path}[${i}]`));
    if (value !== null && typeof value === 'object') {
        const out = {};
        for (const [k, v] of Object.entries(value))
            out[k] = interpolate(v, env, errors, path ? `${path}.${k}` : k);
        return out;
    }
    return value;
}
//# sourceMappingURL=interpolate.js.map