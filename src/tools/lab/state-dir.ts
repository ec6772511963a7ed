/** Where `vxtun lab up` keeps a teaching lab's state (a path the command line names without loading the lab). */
export const DEFAULT_LAB_DIR = '/run/vxtun-lab';
