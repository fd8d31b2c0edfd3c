// The operator's certificate authority: a CA, member and operator certificates (node-forge), and
// the checks of a key pair (Node's X509Certificate). Imports node-forge and node:crypto only.
export { CA_VALIDITY_DAYS, CERT_VALIDITY_DAYS, certInfo, issue, needsRenewal, newCA, problemOf, type CertInfo, type IssueRequest, type KeyPair } from './pki.js';
