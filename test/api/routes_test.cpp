#include <gtest/gtest.h>

#include "api/routes.h"

namespace trellis::api {
namespace {

TEST(Routes, EveryOperationOnce) {
  EXPECT_EQ(allRoutes().size(), 73u);
  for (const auto& route : allRoutes()) {
    auto match = matchRoute(route.method, std::string(route.pattern));
    ASSERT_NE(match.route, nullptr) << route.operation;
    EXPECT_STREQ(match.route->operation, route.operation);
  }
}

TEST(Routes, LabelsAreDecodedAfterSplitting) {
  auto match = matchRoute(
      "GET", "/services/arn%3Aaws%3Avpc-lattice%3Aus-east-1%3A111122223333%3Aservice%2Fsvc-0123456789abcdef0/listeners");
  ASSERT_NE(match.route, nullptr);
  EXPECT_STREQ(match.route->operation, "ListListeners");
  ASSERT_EQ(match.labels.size(), 1u);
  EXPECT_EQ(match.labels[0], "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0");
}

TEST(Routes, MethodMatters) {
  EXPECT_STREQ(matchRoute("PATCH", "/services/svc-1/listeners/l-1/rules").route->operation, "BatchUpdateRule");
  EXPECT_STREQ(matchRoute("POST", "/services/svc-1/listeners/l-1/rules").route->operation, "CreateRule");
  EXPECT_STREQ(matchRoute("DELETE", "/tags/arn").route->operation, "UntagResource");
  auto wrong = matchRoute("PUT", "/services");
  EXPECT_EQ(wrong.route, nullptr);
  EXPECT_TRUE(wrong.methodMismatch);
}

TEST(Routes, NoMatch) {
  EXPECT_EQ(matchRoute("GET", "/nothing").route, nullptr);
  EXPECT_EQ(matchRoute("GET", "/services//listeners").route, nullptr);
  EXPECT_FALSE(matchRoute("GET", "/nothing").methodMismatch);
}

TEST(Routes, BadEscapeIsFlagged) {
  auto match = matchRoute("GET", "/services/svc%zz");
  ASSERT_NE(match.route, nullptr);
  EXPECT_TRUE(match.badEncoding);
}

}  // namespace
}  // namespace trellis::api
