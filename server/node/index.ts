export { Node, type NodeConfig } from './node.js';
