export { loadConfig, usage, parseArgs, ConfigError, type Config } from './config.js';
