export { AuthStore, NOBODY, ROOT_ROLE, ROOT_USER, type AuthInfo } from './store.js';
export { MergedPermissions, IntervalSet, affineCompare, permissionInterval, PERM_READ, PERM_WRITE, PERM_READWRITE } from './perms.js';
export { SimpleTokens, JwtTokens, checkPassword, hashPassword, simpleTokenIndex, simpleTokenPrefix, storedPassword, type JwtOptions } from './tokens.js';
export { checkDeleteRequest, checkLeaseKeys, checkPutRequest, checkRangeRequest, checkTxnRequest, type LeaseKeysOf } from './requests.js';
