import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { loadConfigFile } from './load.js';
/**
 * The file config source: loads the document, applies it, and re-applies it
 * on `reload()` (SIGHUP) and, with `watch: true`, when the file changes. A
 * document that fails validation or compilation is refused with its errors
 * logged; the running snapshot keeps serving.
 */
export class FileSource {
    file;
    gateway;
    watcher;
    debounce;
    constructor(file, gateway) {
        this.file = resolve(file);
        this.gateway = gateway;
    }
    async reload(reason) {
        const log = this.gateway.logger;
        const loaded = loadConfigFile(this.file);
        if (!loaded.ok) {
            log.error({ file: this.file, reason, errors: loaded.errors.map((e) => `${e.path}: ${e.message}`) }, 'config rejected; keeping the running config');
            return false;
        }
        const result = await this.gateway.apply(loaded.config);
        if (!result.ok) {
            log.error({ file: this.file, reason, error: result.error }, 'config rejected; keeping the running config');
            return false;
        }
        this.setWatch(loaded.config.watch);
        return true;
    }
    /** Watches the file's directory (editors often replace a file rather than write it in place). */
    setWatch(on) {
        if (!on) {
            this.watcher?.close();
            this.watcher = undefined;
            return;
        }
        if (this.watcher)
            return;
        const name = basename(this.file);
        this.watcher = watch(dirname(this.file), (_event, changed) => {
            if (changed !== null && changed !== name)
                return;
            clearTimeout(this.debounce);
            this.debounce = setTimeout(() => void this.reload('file changed'), 150);
        });
        this.watcher.unref();
    }
    close() {
        clearTimeout(this.debounce);
        this.setWatch(false);
    }
}
//# sourceMappingURL=file-source.js.map