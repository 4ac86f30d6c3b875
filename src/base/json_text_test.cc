#include "base/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion {
namespace {

TEST(JsonText, DoublesInTheirShortestForm) {
  boost::json::object o;
  o["zero"] = 0.0;
  o["small"] = 0.017;
  o["whole"] = 3.0;
  o["big"] = 1e20;
  o["inf"] = HUGE_VAL;
  o["n"] = -5;
  o["u"] = 18446744073709551615ull;
  o["s"] = "a\"b\n\x01";
  o["list"] = boost::json::array{true, nullptr, 2.5, boost::json::object{}};
  const std::string text = jsonText(o);
  EXPECT_EQ(text,
            R"({"zero":0,"small":0.017,"whole":3,"big":1e+20,"inf":null,"n":-5,"u":18446744073709551615,)"
            R"("s":"a\"b\n\u0001","list":[true,null,2.5,{}]})");
  // It reads back as the same values (but inf, which JSON cannot hold).
  auto back = boost::json::parse(text).as_object();
  EXPECT_EQ(back["small"].to_number<double>(), 0.017);
  EXPECT_EQ(back["big"].to_number<double>(), 1e20);
  EXPECT_EQ(back["s"].as_string(), "a\"b\n\x01");
}

}  // namespace
}  // namespace ganglion
