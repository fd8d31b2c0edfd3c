export { flagTable, loadConfig, usage, parseArgs, ConfigError, type Config, type TlsFiles, type NoEffectFlag } from './config.js';
export { EXIT_BAD_FLAGS, EXIT_BUG, EXIT_FAILURE, EXIT_MEMBER_REMOVED, EXIT_OK, exitStatusHelp } from './exit.js';
export { NO_EFFECT, REFUSED, FEATURE_GATES } from './compat.js';
