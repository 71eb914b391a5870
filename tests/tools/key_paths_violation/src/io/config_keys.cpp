// The key table may spell every path.
const char* row = "optim.lr";
