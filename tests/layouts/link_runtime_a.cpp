// One of two TUs that each bring leakguard's runtime: must not link.
#include <leakguard/implementation.hpp>
