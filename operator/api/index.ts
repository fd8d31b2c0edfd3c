// The EtcdCluster API: types, defaults, the validation rules (TypeScript and CEL from one table) and
// the CRD object. Imports nothing outside this folder.
export * from './types.js';
export { DEFAULTS, withDefaults, quotaFor, backupSpecWithDefaults, destinationWithDefaults } from './defaults.js';
export {
  ALLOWED_REPLICAS,
  BACKUP_RULES,
  BUCKET_PATTERN,
  CRON_NICKNAMES,
  CRON_PATTERN,
  DURATION_PATTERN,
  ENDPOINT_PATTERN,
  EXTRA_ARG_PATTERN,
  MESSAGES,
  OWNED_FLAGS,
  RULES,
  TIME_ZONE_PATTERN,
  VERSION_PATTERN,
  type Rule,
} from './rules.js';
export { isQuantity, parseQuantity, QuantityError, QUANTITY_PATTERN } from './quantity.js';
export { backupProblemsOf, problemsOf, SpecInvalid, validateSpec } from './validate.js';
export { backupCrd, BACKUP_CRD_NAME, crd, CRD_NAME, openApiSchema } from './schema.js';
