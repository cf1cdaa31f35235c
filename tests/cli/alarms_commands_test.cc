#include "cli/alarms_commands.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ty::cli {
namespace {

using nlohmann::json;

json Read(const std::string& xml) {
  std::string text, error;
  EXPECT_TRUE(QueryXmlToJson(xml, &text, &error)) << error;
  return json::parse(text);
}

TEST(QueryXmlToJsonTest, ListsMapsAndText) {
  json doc = Read(
      "<?xml version=\"1.0\"?>\n<ListTopicsResponse xmlns=\"http://sns.amazonaws.com/doc/"
      "2010-03-31/\"><ListTopicsResult><Topics><member><TopicArn>a&amp;b</TopicArn></member>"
      "<member><TopicArn>c</TopicArn></member></Topics></ListTopicsResult></ListTopicsResponse>");
  EXPECT_EQ(doc["ListTopicsResponse"]["ListTopicsResult"]["Topics"],
            json::parse(R"([{"TopicArn":"a&b"},{"TopicArn":"c"}])"));
  doc = Read(
      "<R><Attributes><entry><key>Owner</key><value>1&#x41;</value></entry>"
      "<entry><key>E</key><value/></entry></Attributes></R>");
  EXPECT_EQ(doc["R"]["Attributes"], json::parse(R"({"Owner":"1A","E":""})"));
}

TEST(QueryXmlToJsonTest, RefusesBrokenAndTooDeepDocuments) {
  std::string text, error;
  EXPECT_FALSE(QueryXmlToJson("<a><b>x</a>", &text, &error));
  EXPECT_FALSE(QueryXmlToJson("<a", &text, &error));
  EXPECT_FALSE(QueryXmlToJson("", &text, &error));
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  EXPECT_FALSE(QueryXmlToJson(deep, &text, &error));
  EXPECT_EQ(error, "too deep");
  // A map entry whose key is not text is kept as a plain member, not thrown on.
  EXPECT_TRUE(QueryXmlToJson("<a><entry><key><x>1</x></key></entry></a>", &text, &error));
  EXPECT_TRUE(QueryXmlToJson("<a>\xff\xfe</a>", &text, &error));
}

}  // namespace
}  // namespace ty::cli
