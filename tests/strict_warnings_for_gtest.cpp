// Compiled only, as strict_warnings.cpp: the GoogleTest integration.
#include <gtest/gtest.h>
#include <leakguard/gtest.hpp>

TEST(Strict, Scope) {
  LEAKGUARD_SCOPE("strict");
  EXPECT_TRUE(true);
}
