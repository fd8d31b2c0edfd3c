/** Cairn's own release. */
export const CAIRN_VERSION = '0.1.0';
