#include "http/http_date.h"

#include <gtest/gtest.h>

namespace ganglion::http {
namespace {

TEST(HttpDate, FormatsImfFixdate) {
  EXPECT_EQ(formatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(formatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(formatHttpDate(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(formatHttpDate(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
}

TEST(HttpDate, ParsesTheThreeForms) {
  EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(parseHttpDate("Sun Nov 16 08:49:37 1994"), 784111777 + 10 * 86400);
}

TEST(HttpDate, RoundTrips) {
  for (int64_t t : {0ll, 784111777ll, 951782400ll, 1764460800ll, 4102444799ll})
    EXPECT_EQ(parseHttpDate(formatHttpDate(t)), t) << t;
}

TEST(HttpDate, RefusesWhatIsNotADate) {
  for (const char* bad :
       {"", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT extra", "Sun Nov 6 08:49:37 1994",
        "Sun, 00 Nov 1994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT"})
    EXPECT_FALSE(parseHttpDate(bad).has_value()) << bad;
}

}  // namespace
}  // namespace ganglion::http
