// A file that spells optim.lr in a comment (allowed) and keys in two string literals (reported).
/* runtime.seed in a block comment: allowed */
const char* a = "optim.lr: must be > 0";  // reported
const char* b = "optim.lrx and xruntime.seed are other names";
const char* c = R"(set runtime.seed=1)";  // reported (raw string)
const char d = '"';
const char* name = "name";  // single-segment keys are not checked
