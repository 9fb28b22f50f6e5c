// Comma-separated lists (dump stages, native ops).
#include "support/StringList.h"

#include <gtest/gtest.h>

using tessera::splitCommaList;
using List = std::vector<std::string>;

TEST(StringList, SplitsTrimsAndDropsEmptyItems) {
  EXPECT_EQ(splitCommaList("attention"), List{"attention"});
  EXPECT_EQ(splitCommaList(" tile , target "), (List{"tile", "target"}));
  EXPECT_EQ(splitCommaList("a,, ,b,"), (List{"a", "b"}));
  EXPECT_TRUE(splitCommaList("").empty());
  EXPECT_TRUE(splitCommaList(" , ").empty());
}
