#include "events/event_pattern.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/json.h"

namespace ty::events {
namespace {

using nlohmann::json;

// Doc pages the cases come from (EventBridge User Guide):
//   [patterns]  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
//   [content]
//   https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html
//   [operators]
//   https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
//   [arrays] https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-arrays.html
//   [transform]
//   https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
// Cases marked [ruler] follow aws/event-ruler (the matcher EventBridge runs) where the pages are
// silent.

// The EC2 event of [patterns].
constexpr const char* kEc2Event = R"({
  "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
  "account": "111122223333", "time": "2017-12-22T18:43:48Z", "region": "us-west-1",
  "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
  "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"}})";

// The SageMaker job event of ../shared/spec/aws-services.md §1.6 (trimmed).
constexpr const char* kJobEvent = R"({
  "version": "0", "id": "29f939a9-3cce-a8e1-24c7-3d8db2861245",
  "detail-type": "SageMaker Training Job State Change", "source": "aws.sagemaker",
  "account": "123456789012", "time": "2023-10-04T13:46:47Z", "region": "us-east-1",
  "resources": ["arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job"],
  "detail": {"TrainingJobName": "my-job", "TrainingJobStatus": "InProgress",
    "SecondaryStatus": "Training", "FailureReason": null,
    "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "TrainingEndTime": null,
    "SecondaryStatusTransitions": [
      {"Status": "Starting", "StartTime": 1696427182554},
      {"Status": "Interrupted", "StartTime": 1696427186229},
      {"Status": "Training", "StartTime": 1696427186300}],
    "Tags": {"Team": "ml", "project": "p1"}}})";

struct MatchCase {
  const char* label;
  const char* pattern;
  const char* event;  // nullptr: kEc2Event
  bool match;
};

std::string Label(const ::testing::TestParamInfo<MatchCase>& info) { return info.param.label; }

class PatternMatchTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(PatternMatchTest, MatchesAsEventBridgeDoes) {
  const MatchCase& c = GetParam();
  auto pattern = EventPattern::Parse(c.pattern);
  ASSERT_TRUE(pattern.ok()) << pattern.status().message();
  auto event = ParseJson(c.event != nullptr ? c.event : kEc2Event);
  ASSERT_TRUE(event.ok()) << event.status().message();
  EXPECT_EQ(pattern->Matches(*event), c.match) << c.pattern << "\nagainst\n" << event->dump();
}

INSTANTIATE_TEST_SUITE_P(
    Exact, PatternMatchTest,
    ::testing::Values(
        // [patterns]: the EC2 termination pattern, and the same with another state.
        MatchCase{"Ec2Termination",
                  R"({"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],
                      "detail":{"state":["terminated"]}})",
                  nullptr, true},
        MatchCase{"Ec2OtherState", R"({"source":["aws.ec2"],"detail":{"state":["running"]}})",
                  nullptr, false},
        // [patterns]: a value list is OR; fields are AND.
        MatchCase{"ValueListIsOr", R"({"detail":{"state":["pending","terminated"]}})", nullptr,
                  true},
        MatchCase{"FieldsAreAnd", R"({"source":["aws.ec2"],"region":["us-east-1"]})", nullptr,
                  false},
        // [patterns]: a field of the pattern missing from the event: no match.
        MatchCase{"MissingFieldNoMatch", R"({"detail":{"color":["red"]}})", nullptr, false},
        // [patterns]: matching is exact, character by character, without case folding.
        MatchCase{"CaseSensitive", R"({"detail":{"state":["Terminated"]}})", nullptr, false},
        // [patterns]: null and the empty string are values, and not interchangeable.
        MatchCase{"NullMatchesNull", R"({"detail":{"responseElements":[null]}})",
                  R"({"detail":{"responseElements":null}})", true},
        MatchCase{"NullIsNotEmpty", R"({"detail":{"responseElements":[null]}})",
                  R"({"detail":{"responseElements":""}})", false},
        MatchCase{"EmptyMatchesEmpty", R"({"detail":{"eventVersion":[""]}})",
                  R"({"detail":{"eventVersion":""}})", true},
        MatchCase{"EmptyIsNotNull", R"({"detail":{"eventVersion":[""]}})",
                  R"({"detail":{"eventVersion":null}})", false},
        MatchCase{"NullIsNotMissing", R"({"detail":{"responseElements":[null]}})",
                  R"({"detail":{}})", false},
        // [operators] Equals (number): "Price is 100".
        MatchCase{"NumberEquals", R"({"Price":[100]})", R"({"Price":100})", true},
        MatchCase{"NumberDiffers", R"({"Price":[100]})", R"({"Price":101})", false},
        // [ruler]: a number literal also matches numerically (6 decimals), so 300 matches
        // 300.0 and 3.0e2 ([patterns] says they differ; event-ruler adds a numeric equality).
        MatchCase{"NumberNumerically", R"({"x":[300]})", R"({"x":3.0e2})", true},
        MatchCase{"NumberFloatLiteral", R"({"x":[300.0]})", R"({"x":300})", true},
        // Beyond ±5e9 (account numbers, epoch ms) numbers still match exactly.
        MatchCase{"BigNumberExact", R"({"t":[1696427182554]})", R"({"t":1696427182554})", true},
        MatchCase{"BigNumberDiffers", R"({"t":[1696427182554]})", R"({"t":1696427182555})", false},
        // A string never matches a number, nor a number a string.
        MatchCase{"StringIsNotNumber", R"({"x":["300"]})", R"({"x":300})", false},
        MatchCase{"NumberIsNotString", R"({"x":[300]})", R"({"x":"300"})", false},
        // [operators] Null / booleans.
        MatchCase{"TrueMatches", R"({"ok":[true]})", R"({"ok":true})", true},
        MatchCase{"FalseIsNotTrue", R"({"ok":[false]})", R"({"ok":true})", false},
        MatchCase{"TrueIsNotString", R"({"ok":[true]})", R"({"ok":"true"})", false},
        // A leaf pattern against an object, a nested pattern against a scalar: no match.
        MatchCase{"LeafAgainstObject", R"({"detail":["x"]})", R"({"detail":{"a":"x"}})", false},
        MatchCase{"ObjectAgainstScalar", R"({"detail":{"a":["x"]}})", R"({"detail":"x"})", false},
        // The SageMaker rule of spec §1.7 against the job event.
        MatchCase{
            "JobRule",
            R"({"source":["aws.sagemaker"],"detail-type":["SageMaker Training Job State Change"],
                      "detail":{"TrainingJobStatus":["InProgress"]}})",
            kJobEvent, true},
        MatchCase{"JobRuleFailedOnly", R"({"detail":{"TrainingJobStatus":["Failed"]}})", kJobEvent,
                  false},
        MatchCase{"JobTag", R"({"detail":{"Tags":{"Team":["ml"]}}})", kJobEvent, true},
        MatchCase{"JobNullFailureReason", R"({"detail":{"FailureReason":[null]}})", kJobEvent,
                  true}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    Arrays, PatternMatchTest,
    ::testing::Values(
        // [arrays]: an array in the event matches when it shares a value with the pattern's.
        MatchCase{"ResourcesIntersect",
                  R"({"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
                                   "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
                                   "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]})",
                  R"({"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
                                   "arn:aws:ec2:us-east-1:777788889999:instance/i-b188560f"]})",
                  true},
        MatchCase{"ResourcesDisjoint",
                  R"({"resources":["arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f"]})",
                  R"({"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]})",
                  false},
        MatchCase{"EmptyEventArray", R"({"resources":["a"]})", R"({"resources":[]})", false},
        // [ruler]: arrays of arrays are flattened.
        MatchCase{"NestedArraysFlatten", R"({"a":[3]})", R"({"a":[[1,2],[3]]})", true},
        // A nested pattern against an array of objects: one element must match all of it.
        MatchCase{"ArrayOfObjects",
                  R"({"detail":{"SecondaryStatusTransitions":{"Status":["Interrupted"]}}})",
                  kJobEvent, true},
        MatchCase{"ArrayOfObjectsSameElement",
                  R"({"detail":{"SecondaryStatusTransitions":{"Status":["Interrupted"],
                                                              "StartTime":[1696427182554]}}})",
                  kJobEvent, false},
        MatchCase{"ArrayOfObjectsNone",
                  R"({"detail":{"SecondaryStatusTransitions":{"Status":["Failed"]}}})", kJobEvent,
                  false}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    PrefixSuffix, PatternMatchTest,
    ::testing::Values(
        // [content] Prefix matching: "time" starting with 2017-10-02.
        MatchCase{"Prefix", R"({"time":[{"prefix":"2017-10-02"}]})",
                  R"({"time":"2017-10-02T18:43:48Z"})", true},
        MatchCase{"PrefixNo", R"({"time":[{"prefix":"2017-10-02"}]})",
                  R"({"time":"2017-10-03T18:43:48Z"})", false},
        MatchCase{"PrefixCaseSensitive", R"({"service":[{"prefix":"eventb"}]})",
                  R"({"service":"EventBridge"})", false},
        MatchCase{"PrefixNotOnNumbers", R"({"n":[{"prefix":"1"}]})", R"({"n":12})", false},
        // [ruler] An empty prefix matches every string (a peer bug, spec §8.2).
        MatchCase{"EmptyPrefixAnyString", R"({"s":[{"prefix":""}]})", R"({"s":"x"})", true},
        MatchCase{"EmptyPrefixNotNull", R"({"s":[{"prefix":""}]})", R"({"s":null})", false},
        // [content] Prefix matching while ignoring case: "EventB".
        MatchCase{"PrefixIgnoreCase",
                  R"({"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}})",
                  R"({"detail":{"service":"eventbridge"}})", true},
        MatchCase{"PrefixIgnoreCaseUpper",
                  R"({"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}})",
                  R"({"detail":{"service":"EVENTBUS"}})", true},
        MatchCase{"PrefixIgnoreCaseNo",
                  R"({"detail":{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}})",
                  R"({"detail":{"service":"Lambda"}})", false},
        // [content] Suffix matching: FileName ending in .png.
        MatchCase{"Suffix", R"({"FileName":[{"suffix":".png"}]})", R"({"FileName":"a/b.png"})",
                  true},
        MatchCase{"SuffixNo", R"({"FileName":[{"suffix":".png"}]})", R"({"FileName":"a/b.PNG"})",
                  false},
        // [content] Suffix matching while ignoring case.
        MatchCase{"SuffixIgnoreCase",
                  R"({"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}})",
                  R"({"detail":{"FileName":"image.PNG"}})", true},
        MatchCase{"SuffixIgnoreCaseNo",
                  R"({"detail":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}})",
                  R"({"detail":{"FileName":"image.jpg"}})", false},
        // [operators] Equals (ignore case): Name is "Alice", any case.
        MatchCase{"EqualsIgnoreCase", R"({"Name":[{"equals-ignore-case":"alice"}]})",
                  R"({"Name":"ALICE"})", true},
        MatchCase{"EqualsIgnoreCaseNo", R"({"Name":[{"equals-ignore-case":"alice"}]})",
                  R"({"Name":"Alicia"})", false},
        // Prefix on an array value: any element.
        MatchCase{"PrefixOnArray", R"({"resources":[{"prefix":"arn:aws:sagemaker:us-east-1:"}]})",
                  kJobEvent, true}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    AnythingBut, PatternMatchTest,
    ::testing::Values(
        // [content] Anything-but with a string, a number, lists of each.
        MatchCase{"String", R"({"detail":{"state":[{"anything-but":"initializing"}]}})",
                  R"({"detail":{"state":"running"}})", true},
        MatchCase{"StringSame", R"({"detail":{"state":[{"anything-but":"initializing"}]}})",
                  R"({"detail":{"state":"initializing"}})", false},
        MatchCase{"Number", R"({"detail":{"x-limit":[{"anything-but":123}]}})",
                  R"({"detail":{"x-limit":456}})", true},
        MatchCase{"NumberSame", R"({"detail":{"x-limit":[{"anything-but":123}]}})",
                  R"({"detail":{"x-limit":123.0}})", false},
        MatchCase{"StringList",
                  R"({"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}})",
                  R"({"detail":{"state":"running"}})", true},
        MatchCase{"StringListHit",
                  R"({"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}})",
                  R"({"detail":{"state":"overloaded"}})", false},
        MatchCase{"NumberList", R"({"detail":{"x-limit":[{"anything-but":[100,200,300]}]}})",
                  R"({"detail":{"x-limit":150}})", true},
        MatchCase{"NumberListHit", R"({"detail":{"x-limit":[{"anything-but":[100,200,300]}]}})",
                  R"({"detail":{"x-limit":200}})", false},
        // A missing field is not "anything but": the field must exist.
        MatchCase{"MissingField", R"({"detail":{"state":[{"anything-but":"initializing"}]}})",
                  R"({"detail":{}})", false},
        // [content] anything-but prefix "init".
        MatchCase{"Prefix", R"({"detail":{"state":[{"anything-but":{"prefix":"init"}}]}})",
                  R"({"detail":{"state":"running"}})", true},
        MatchCase{"PrefixHit", R"({"detail":{"state":[{"anything-but":{"prefix":"init"}}]}})",
                  R"({"detail":{"state":"initializing"}})", false},
        // [operators] Anything-but (ends with): FileName not .png.
        MatchCase{"Suffix", R"({"FileName":[{"anything-but":{"suffix":".png"}}]})",
                  R"({"FileName":"a.jpg"})", true},
        MatchCase{"SuffixHit", R"({"FileName":[{"anything-but":{"suffix":".png"}}]})",
                  R"({"FileName":"a.png"})", false},
        // [operators] Anything-but (ignore case): state besides "initializing", any case.
        MatchCase{"IgnoreCase",
                  R"({"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]})",
                  R"({"state":"running"})", true},
        MatchCase{"IgnoreCaseHit",
                  R"({"state":[{"anything-but":{"equals-ignore-case":"initializing"}}]})",
                  R"({"state":"INITIALIZING"})", false},
        MatchCase{"IgnoreCaseList",
                  R"({"state":[{"anything-but":{"equals-ignore-case":["a","B"]}}]})",
                  R"({"state":"b"})", false},
        // [operators] Anything-but using a wildcard: FilePath not including /lib/.
        MatchCase{"Wildcard", R"({"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]})",
                  R"({"FilePath":"/usr/bin/x"})", true},
        MatchCase{"WildcardHit", R"({"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]})",
                  R"({"FilePath":"/usr/lib/x"})", false},
        // [operators] Not: Weather is anything but "Raining".
        MatchCase{"Weather", R"({"Weather":[{"anything-but":["Raining"]}]})",
                  R"({"Weather":"Sunny"})", true},
        // An array value: any element that is not excluded is enough.
        MatchCase{"ArrayAnyElement", R"({"s":[{"anything-but":"a"}]})", R"({"s":["a","b"]})", true},
        MatchCase{"ArrayAllExcluded", R"({"s":[{"anything-but":"a"}]})", R"({"s":["a","a"]})",
                  false}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    Numeric, PatternMatchTest,
    ::testing::Values(
        // [content] Numeric matching: c-count in (0, 5], d-count < 10, x-limit = 3.018e2.
        MatchCase{"DocExample",
                  R"({"detail":{"c-count":[{"numeric":[">",0,"<=",5]}],
                                "d-count":[{"numeric":["<",10]}],
                                "x-limit":[{"numeric":["=",3.018e2]}]}})",
                  R"({"detail":{"c-count":5,"d-count":9.99,"x-limit":301.8}})", true},
        MatchCase{"DocExampleLowEdge", R"({"detail":{"c-count":[{"numeric":[">",0,"<=",5]}]}})",
                  R"({"detail":{"c-count":0}})", false},
        MatchCase{"DocExampleHighEdge", R"({"detail":{"d-count":[{"numeric":["<",10]}]}})",
                  R"({"detail":{"d-count":10}})", false},
        MatchCase{"EqualsExponent", R"({"x":[{"numeric":["=",3.0e2]}]})", R"({"x":300})", true},
        MatchCase{"EqualsNo", R"({"x":[{"numeric":["=",300]}]})", R"({"x":300.5})", false},
        MatchCase{"GreaterEqual", R"({"x":[{"numeric":[">=",10]}]})", R"({"x":10})", true},
        MatchCase{"Greater", R"({"x":[{"numeric":[">",10]}]})", R"({"x":10})", false},
        MatchCase{"LessEqual", R"({"x":[{"numeric":["<=",-1.5]}]})", R"({"x":-1.5})", true},
        MatchCase{"RangeClosed", R"({"x":[{"numeric":[">=",1,"<",2]}]})", R"({"x":1.999999})",
                  true},
        // [operators] Price more than 10 and at most 20.
        MatchCase{"PriceRange", R"({"Price":[{"numeric":[">",10,"<=",20]}]})", R"({"Price":20})",
                  true},
        // Six decimal places: differences below a millionth are equal.
        MatchCase{"SixDecimals", R"({"x":[{"numeric":["=",0.1]}]})", R"({"x":0.1000000001})", true},
        // Numeric never matches strings, and values beyond ±5e9 never match.
        MatchCase{"StringNotNumeric", R"({"x":[{"numeric":[">",0]}]})", R"({"x":"5"})", false},
        MatchCase{"OutOfRange", R"({"x":[{"numeric":[">",0]}]})", R"({"x":1696427182554})", false},
        MatchCase{"OnJobEvent",
                  R"({"detail":{"ResourceConfig":{"InstanceCount":[{"numeric":[">=",1]}]}}})",
                  kJobEvent, true}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    Exists, PatternMatchTest,
    ::testing::Values(
        // [content] Exists matching: no detail.c-count field.
        MatchCase{"FalseMissing", R"({"detail":{"c-count":[{"exists":false}]}})",
                  R"({"detail-type":"EC2 Instance State-change Notification",
                      "detail":{"state":["initializing","running"]}})",
                  true},
        // [content]: it also matches when c-count is an object, which is not a leaf.
        MatchCase{"FalseObject", R"({"detail":{"c-count":[{"exists":false}]}})",
                  R"({"detail":{"state":["initializing","running"],"c-count":{"c1":100}}})", true},
        MatchCase{"FalsePresent", R"({"detail":{"c-count":[{"exists":false}]}})",
                  R"({"detail":{"c-count":3}})", false},
        // [operators] ProductName exists / does not exist.
        MatchCase{"TruePresent", R"({"ProductName":[{"exists":true}]})",
                  R"({"ProductName":"Widget"})", true},
        MatchCase{"TrueMissing", R"({"ProductName":[{"exists":true}]})", R"({"Other":1})", false},
        MatchCase{"TrueNull", R"({"ProductName":[{"exists":true}]})", R"({"ProductName":null})",
                  true},
        MatchCase{"TrueObject", R"({"ProductName":[{"exists":true}]})",
                  R"({"ProductName":{"a":1}})", false},
        // The whole parent missing: the leaf is missing too.
        MatchCase{"FalseParentMissing", R"({"detail":{"c-count":[{"exists":false}]}})",
                  R"({"source":"x"})", true},
        MatchCase{"JobNotFinished", R"({"detail":{"TrainingEndTime":[null],
                                                  "FailureReason":[{"exists":true}]}})",
                  kJobEvent, true},
        // exists OR a value.
        MatchCase{"OrValue", R"({"a":[{"exists":false},"x"]})", R"({"a":"x"})", true}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    Cidr, PatternMatchTest,
    ::testing::Values(
        // [content] IP address matching: 10.0.0.0/24.
        MatchCase{"V4In", R"({"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}})",
                  R"({"detail":{"sourceIPAddress":"10.0.0.255"}})", true},
        MatchCase{"V4Out", R"({"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}})",
                  R"({"detail":{"sourceIPAddress":"10.0.1.0"}})", false},
        MatchCase{"V4NotAnAddress", R"({"ip":[{"cidr":"10.0.0.0/24"}]})", R"({"ip":"10.0.0"})",
                  false},
        MatchCase{"V4Slash0", R"({"ip":[{"cidr":"0.0.0.0/0"}]})", R"({"ip":"192.168.1.1"})", true},
        MatchCase{"V4Odd", R"({"ip":[{"cidr":"192.168.0.0/23"}]})", R"({"ip":"192.168.1.7"})",
                  true},
        MatchCase{"V4OddOut", R"({"ip":[{"cidr":"192.168.0.0/23"}]})", R"({"ip":"192.168.2.7"})",
                  false},
        MatchCase{"V6In", R"({"ip":[{"cidr":"2001:db8::/32"}]})", R"({"ip":"2001:DB8:0:1::5"})",
                  true},
        MatchCase{"V6Out", R"({"ip":[{"cidr":"2001:db8::/32"}]})", R"({"ip":"2001:db9::5"})",
                  false},
        MatchCase{"FamiliesDiffer", R"({"ip":[{"cidr":"::/0"}]})", R"({"ip":"10.0.0.1"})", false},
        // [ruler] A plain string that is an address matches the same address however written.
        MatchCase{"ExactV6Forms", R"({"ip":["2001:db8::1"]})",
                  R"({"ip":"2001:0db8:0000:0000:0000:0000:0000:0001"})", true}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    Wildcard, PatternMatchTest,
    ::testing::Values(
        // [operators] Wildcard: any .png within the folder "dir".
        MatchCase{"DirPng", R"({"FileName":[{"wildcard":"dir/*.png"}]})",
                  R"({"FileName":"dir/a.png"})", true},
        MatchCase{"DirPngDeeper", R"({"FileName":[{"wildcard":"dir/*.png"}]})",
                  R"({"FileName":"dir/sub/a.png"})", true},
        MatchCase{"DirPngNo", R"({"FileName":[{"wildcard":"dir/*.png"}]})",
                  R"({"FileName":"other/a.png"})", false},
        // [content] Wildcard matching: an event bus ARN in any account.
        MatchCase{
            "BusArn", R"({"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]})",
            R"({"EventBusArn":"arn:aws:events:us-east-1:123456789012:event-bus/default"})", true},
        MatchCase{"BusArnRegion",
                  R"({"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]})",
                  R"({"EventBusArn":"arn:aws:events:us-west-2:123456789012:event-bus/default"})",
                  false},
        MatchCase{"NoStarIsExact", R"({"s":[{"wildcard":"abc"}]})", R"({"s":"abcd"})", false},
        MatchCase{"StarOnly", R"({"s":[{"wildcard":"*"}]})", R"({"s":""})", true},
        MatchCase{"OverlapPieces", R"({"s":[{"wildcard":"a*ab*b"}]})", R"({"s":"aab"})", false},
        MatchCase{"Overlap2", R"({"s":[{"wildcard":"a*ab*b"}]})", R"({"s":"aabb"})", true},
        MatchCase{"Repeats", R"({"s":[{"wildcard":"*aab*"}]})", R"({"s":"aaaab"})", true},
        // [operators] Escapes: \* is a literal star, \\ a backslash.
        MatchCase{"EscapedStar", R"({"s":[{"wildcard":"a\\*b"}]})", R"({"s":"a*b"})", true},
        MatchCase{"EscapedStarNotWild", R"({"s":[{"wildcard":"a\\*b"}]})", R"({"s":"axb"})", false},
        MatchCase{"EscapedBackslash", R"({"s":[{"wildcard":"a\\\\*"}]})", R"({"s":"a\\anything"})",
                  true},
        MatchCase{"NotOnNumbers", R"({"n":[{"wildcard":"1*"}]})", R"({"n":12})", false}),
    Label);

INSTANTIATE_TEST_SUITE_P(
    Or, PatternMatchTest,
    ::testing::Values(
        // [content] $or: c-count OR d-count OR x-limit.
        MatchCase{"DocNumeric",
                  R"({"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},
                                       {"d-count":[{"numeric":["<",10]}]},
                                       {"x-limit":[{"numeric":["=",3.018e2]}]}]}})",
                  R"({"detail":{"c-count":50,"d-count":50,"x-limit":301.8}})", true},
        MatchCase{"DocNumericNone",
                  R"({"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},
                                       {"d-count":[{"numeric":["<",10]}]}]}})",
                  R"({"detail":{"c-count":50,"d-count":50}})", false},
        // [content] source AND (metricName OR namespace).
        MatchCase{"DocMetric",
                  R"({"source":["aws.cloudwatch"],
                      "$or":[{"metricName":["CPUUtilization","ReadLatency"]},
                             {"namespace":["AWS/EC2","AWS/ES"]}]})",
                  R"({"source":"aws.cloudwatch","namespace":"AWS/ES"})", true},
        MatchCase{"DocMetricWrongSource",
                  R"({"source":["aws.cloudwatch"],
                      "$or":[{"metricName":["CPUUtilization","ReadLatency"]},
                             {"namespace":["AWS/EC2","AWS/ES"]}]})",
                  R"({"source":"aws.ec2","namespace":"AWS/ES"})", false},
        // [operators] Or (multiple fields): Location "New York" or Day "Monday".
        MatchCase{"LocationOrDay", R"({"$or":[{"Location":["New York"]},{"Day":["Monday"]}]})",
                  R"({"Location":"Paris","Day":"Monday"})", true},
        // Nested $or, and $or with nested objects.
        MatchCase{"Nested", R"({"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":{"d":["3"]}}]}]})",
                  R"({"c":{"d":"3"}})", true},
        MatchCase{"NestedNone", R"({"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":{"d":["3"]}}]}]})",
                  R"({"c":{"d":"4"}})", false},
        // [ruler] "$or" with an object value is a plain field name.
        MatchCase{"OrObjectIsAField",
                  R"({"source":["aws.cloudwatch"],"$or":{"metricType":["MetricType"]}})",
                  R"({"source":"aws.cloudwatch","$or":{"metricType":"MetricType"}})", true},
        MatchCase{"OrObjectIsAFieldNo", R"({"$or":{"metricType":["MetricType"]}})",
                  R"({"metricType":"MetricType"})", false},
        // Governance: act at Starting, or on any terminal status.
        MatchCase{"JobStatusOr",
                  R"({"source":["aws.sagemaker"],
                      "detail":{"$or":[{"SecondaryStatus":["Starting"]},
                                       {"TrainingJobStatus":["Completed","Failed","Stopped"]}]}})",
                  kJobEvent, false}),
    Label);

struct ErrorCase {
  const char* label;
  std::string pattern;
  const char* reason;  // the message after "Event pattern is not valid. Reason: " starts so
};

std::string ErrorLabel(const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.label; }

class PatternErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(PatternErrorTest, RefusedWithEventBridgesReason) {
  const ErrorCase& c = GetParam();
  auto pattern = EventPattern::Parse(c.pattern);
  ASSERT_FALSE(pattern.ok()) << c.pattern;
  EXPECT_EQ(pattern.status().code(), StatusCode::kInvalidArgument);
  const std::string prefix = "Event pattern is not valid. Reason: ";
  const std::string& message = pattern.status().message();
  ASSERT_EQ(message.rfind(prefix, 0), 0u) << message;
  EXPECT_EQ(message.substr(prefix.size()).rfind(c.reason, 0), 0u) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, PatternErrorTest,
    ::testing::Values(
        ErrorCase{"NotJson", "{", "not valid JSON"},
        ErrorCase{"TrailingGarbage", R"({"a":["x"]} x)", "not valid JSON"},
        ErrorCase{"NotObject", R"(["a"])", "Filter is not an object"},
        ErrorCase{"Scalar", "42", "Filter is not an object"},
        ErrorCase{"EmptyObject", "{}", "Empty objects are not allowed"},
        ErrorCase{"NestedEmptyObject", R"({"detail":{}})", "Empty objects are not allowed"},
        ErrorCase{"ScalarField", R"({"source":"aws.ec2"})",
                  "\"source\" must be an object or an array"},
        ErrorCase{"EmptyArray", R"({"source":[]})", "Empty arrays are not allowed"},
        ErrorCase{"ArrayInArray", R"({"source":[["a"]]})",
                  "Match value must be String, number, true, false, or null"},
        ErrorCase{"UnknownOperator", R"({"a":[{"contains":"x"}]})",
                  "Unrecognized match type contains"},
        ErrorCase{"EmptyExpression", R"({"a":[{}]})", "Match expression name not found"},
        ErrorCase{"TwoKeys", R"({"a":[{"prefix":"x","suffix":"y"}]})",
                  "Only one key allowed in match expression"},
        ErrorCase{"PrefixNumber", R"({"a":[{"prefix":1}]})",
                  "prefix match pattern must be a string"},
        ErrorCase{"PrefixUnknownObject", R"({"a":[{"prefix":{"wildcard":"x"}}]})",
                  "Unsupported prefix pattern: wildcard"},
        ErrorCase{"SuffixIgnoreCaseNumber", R"({"a":[{"suffix":{"equals-ignore-case":1}}]})",
                  "equals-ignore-case match pattern must be a string"},
        ErrorCase{"IgnoreCaseNumber", R"({"a":[{"equals-ignore-case":5}]})",
                  "equals-ignore-case match pattern must be a string"},
        ErrorCase{"ExistsString", R"({"a":[{"exists":"yes"}]})",
                  "exists match pattern must be either true or false."},
        ErrorCase{"NumericNotArray", R"({"a":[{"numeric":">"}]})",
                  "Value of numeric must be an array."},
        ErrorCase{"NumericBadOp", R"({"a":[{"numeric":["!=",1]}]})",
                  "Unrecognized numeric range operator: !="},
        ErrorCase{"NumericNotNumber", R"({"a":[{"numeric":[">","1"]}]})",
                  "Value of > must be numeric"},
        ErrorCase{"NumericEqualsTooMany", R"({"a":[{"numeric":["=",1,"<",2]}]})",
                  "Too many elements in numeric expression"},
        ErrorCase{"NumericBadTop", R"({"a":[{"numeric":[">",1,">",2]}]})",
                  "Bad numeric range operator: >"},
        ErrorCase{"NumericInverted", R"({"a":[{"numeric":[">",5,"<",2]}]})",
                  "Bottom must be less than top"},
        ErrorCase{"NumericTooBig", R"({"a":[{"numeric":[">",1e10]}]})",
                  "Value of > must be between"},
        ErrorCase{"NumericTooManyTerms", R"({"a":[{"numeric":[">",1,"<",2,"<",3]}]})",
                  "Too many terms in numeric range expression"},
        ErrorCase{"AnythingButNull", R"({"a":[{"anything-but":null}]})",
                  "Value of anything-but must be an array or single string/number value."},
        ErrorCase{"AnythingButMixed", R"({"a":[{"anything-but":["a",1]}]})",
                  "Inside anything but list, either all values are number or string"},
        ErrorCase{"AnythingButBoolInList", R"({"a":[{"anything-but":[true]}]})",
                  "Inside anything but list, start|null|boolean is not supported."},
        ErrorCase{"AnythingButUnknown", R"({"a":[{"anything-but":{"numeric":[">",1]}}]})",
                  "Unsupported anything-but pattern: numeric"},
        ErrorCase{"AnythingButEmptyPrefix", R"({"a":[{"anything-but":{"prefix":""}}]})",
                  "Null prefix/suffix not allowed"},
        ErrorCase{"AnythingButIgnoreCaseNumber",
                  R"({"a":[{"anything-but":{"equals-ignore-case":[1]}}]})",
                  "Inside anything-but/equals-ignore-case list"},
        ErrorCase{"CidrNoSlash", R"({"a":[{"cidr":"10.0.0.1"}]})",
                  "Malformed CIDR, one '/' required"},
        ErrorCase{"CidrBadAddress", R"({"a":[{"cidr":"10.0.0/8"}]})",
                  "Nonstandard IP address: 10.0.0"},
        ErrorCase{"CidrBits", R"({"a":[{"cidr":"10.0.0.0/33"}]})",
                  "Malformed CIDR, mask bits must be between 0 and 32"},
        ErrorCase{"CidrBitsV6", R"({"a":[{"cidr":"::/129"}]})",
                  "Malformed CIDR, mask bits must be between 0 and 128"},
        ErrorCase{"CidrNotNumber", R"({"a":[{"cidr":"10.0.0.0/x"}]})",
                  "Malformed CIDR, mask bits must be an integer"},
        ErrorCase{"CidrNotString", R"({"a":[{"cidr":10}]})",
                  "prefix match pattern must be a string"},
        // Positions count from 1, as event-ruler's do.
        ErrorCase{"WildcardConsecutive", R"({"key":[{"wildcard":"abc**def"}]})",
                  "Consecutive wildcard characters at pos 4"},
        ErrorCase{"WildcardBadEscape", R"({"key":[{"wildcard":"a\\bc"}]})",
                  "Invalid escape character at pos 2"},
        ErrorCase{"WildcardTrailingBackslash", R"({"key":[{"wildcard":"a\\"}]})",
                  "Invalid escape character at pos 2"},
        ErrorCase{"WildcardNotString", R"({"key":[{"wildcard":["a*"]}]})",
                  "wildcard match pattern must be a string"},
        ErrorCase{"OrNotArray", R"({"$or":"x"})", "It must be an Array followed with $or."},
        ErrorCase{"OrOneBranch", R"({"$or":[{"a":["x"]}]})",
                  "There must have at least 2 Objects in $or relationship."},
        ErrorCase{"OrScalarBranch", R"({"$or":[{"a":["x"]},"b"]})",
                  "Only JSON object is allowed in array of $or relationship."},
        ErrorCase{"OrReservedField", R"({"$or":[{"a":["x"]},{"numeric":["y"]}]})",
                  "numeric is Ruler reserved fieldName which cannot be used inside $or."}),
    ErrorLabel);

TEST(PatternBoundsTest, RefusesOversizedDeepOrTooManyValues) {
  std::string big = R"({"a":[")" + std::string(kMaxPatternBytes, 'x') + R"("]})";
  EXPECT_FALSE(EventPattern::Parse(big).ok());

  std::string deep;
  for (size_t i = 0; i < kMaxPatternDepth + 1; ++i) deep += R"({"a":)";
  deep += R"(["x"])" + std::string(kMaxPatternDepth + 1, '}');
  auto too_deep = EventPattern::Parse(deep);
  ASSERT_FALSE(too_deep.ok());
  EXPECT_NE(too_deep.status().message().find("deeper"), std::string::npos)
      << too_deep.status().message();

  std::string many = R"({"a":[)";
  for (size_t i = 0; i <= kMaxPatternValues; ++i)
    many += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
  many += "]}";
  auto too_many = EventPattern::Parse(many);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("more than"), std::string::npos);

  // Just under the depth limit parses and matches.
  std::string ok_depth;
  size_t levels = kMaxPatternDepth - 1;  // the leaf list is one more level
  for (size_t i = 0; i < levels; ++i) ok_depth += R"({"a":)";
  ok_depth += R"(["x"])" + std::string(levels, '}');
  auto parsed = EventPattern::Parse(ok_depth);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  json event = "x";
  for (size_t i = 0; i < levels; ++i) event = json{{"a", event}};
  EXPECT_TRUE(parsed->Matches(event));
}

TEST(PatternBoundsTest, WildcardsAreCappedAndLinear) {
  std::string stars;
  for (size_t i = 0; i <= kMaxPatternWildcards; ++i) stars += "a*";
  auto refused = EventPattern::Parse(R"({"s":[{"wildcard":")" + stars + R"("}]})");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("Rule is too complex"), std::string::npos);

  // The pattern a*a*...*a*b against 100k a's: exponential for a backtracking matcher,
  // one pass here. It must simply not match (a timeout would show the regression).
  std::string wild;
  for (int i = 0; i < 200; ++i) wild += "a*";
  wild += "b";
  auto pattern = EventPattern::Parse(R"({"s":[{"wildcard":")" + wild + R"("}]})");
  ASSERT_TRUE(pattern.ok()) << pattern.status().message();
  EXPECT_FALSE(pattern->Matches(json{{"s", std::string(100000, 'a')}}));
  EXPECT_TRUE(pattern->Matches(json{{"s", std::string(100000, 'a') + "b"}}));
}

// The example of README.md's "Event patterns" section.
TEST(PatternTest, ReadmeExample) {
  auto pattern = EventPattern::Parse(R"({"source": ["aws.sagemaker"],
   "detail": {"TrainingJobStatus": ["Failed", "Stopped"],
              "TrainingJobName": [{"prefix": "nightly-"}, {"suffix": {"equals-ignore-case": "-EVAL"}}],
              "SecondaryStatus": [{"anything-but": ["Interrupted", "Restarting"]}],
              "ResourceConfig": {"InstanceCount": [{"numeric": [">=", 2, "<", 64]}]},
              "FailureReason": [{"exists": true}],
              "Tags": {"team": [{"equals-ignore-case": "vision"}], "owner": [{"exists": false}]},
              "TrainingJobArn": [{"wildcard": "arn:aws:sagemaker:*:training-job/exp-*"}],
              "$or": [{"SecondaryStatusTransitions": {"Status": ["Interrupted"]}},
                      {"HyperParameters": {"epochs": ["100"]}}]}})");
  ASSERT_TRUE(pattern.ok()) << pattern.status().message();
  json event = {
      {"source", "aws.sagemaker"},
      {"detail",
       {{"TrainingJobStatus", "Failed"},
        {"TrainingJobName", "exp-1-eval"},
        {"SecondaryStatus", "Failed"},
        {"ResourceConfig", {{"InstanceCount", 4}}},
        {"FailureReason", "AlgorithmError"},
        {"Tags", {{"team", "Vision"}}},
        {"TrainingJobArn", "arn:aws:sagemaker:us-east-1:123456789012:training-job/exp-1-eval"},
        {"HyperParameters", {{"epochs", "100"}}},
        {"SecondaryStatusTransitions", json::array({{{"Status", "Starting"}}})}}}};
  EXPECT_TRUE(pattern->Matches(event));
  event["detail"]["Tags"]["owner"] = "bob";
  EXPECT_FALSE(pattern->Matches(event));
}

TEST(PatternTest, MovedPatternStillMatches) {
  auto parsed = EventPattern::Parse(R"({"source":["aws.ec2"]})");
  ASSERT_TRUE(parsed.ok());
  EventPattern moved = std::move(*parsed);
  EXPECT_TRUE(moved.Matches(json{{"source", "aws.ec2"}}));
  EXPECT_FALSE(moved.Matches(json{{"source", "aws.s3"}}));
  EXPECT_FALSE(moved.Matches(json::array()));
  EXPECT_FALSE(moved.Matches(json("aws.ec2")));
}

// ---- InputPath ----

TEST(InputPathTest, SelectsMembersAndIndexes) {
  auto event = ParseJson(kJobEvent);
  ASSERT_TRUE(event.ok());
  struct Case {
    const char* path;
    json want;
  };
  for (const Case& c : {
           Case{"$.detail.TrainingJobName", "my-job"},
           Case{"$.detail-type", "SageMaker Training Job State Change"},
           Case{"$.detail.Tags.Team", "ml"},
           Case{"$.resources[0]", "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job"},
           Case{"$.detail.SecondaryStatusTransitions[1].Status", "Interrupted"},
           Case{"$['detail']['Tags'][\"project\"]", "p1"},
           Case{"$.detail.ResourceConfig.InstanceCount", 1},
           Case{"$.detail.Missing", nullptr},
           Case{"$.resources[5]", nullptr},
           Case{"$.detail.TrainingJobName.deeper", nullptr},
       }) {
    auto got = SelectInputPath(*event, c.path);
    ASSERT_TRUE(got.ok()) << c.path << ": " << got.status().message();
    EXPECT_EQ(*got, c.want) << c.path;
  }
  auto whole = SelectInputPath(*event, "$");
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*whole, *event);
}

TEST(InputPathTest, RefusesWhatItDoesNotSupport) {
  json event = {{"a", 1}};
  for (const std::string& path :
       std::vector<std::string>{"", "detail", "$.", "$..a", "$.a[*]", "$.a[?(@.x)]", "$[", "$.a b[",
                                "$x", std::string("$.") + std::string(300, 'a')}) {
    auto got = SelectInputPath(event, path);
    EXPECT_FALSE(got.ok()) << path;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << path;
  }
}

// ---- InputTransformer ([transform]) ----

constexpr const char* kTransformEvent = R"({
  "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
  "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
  "account": "123456789012", "time": "2015-11-11T21:29:54Z", "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
  "detail": {"instance-id": "i-0123456789", "state": "RUNNING"}})";

struct TransformCase {
  const char* label;
  const char* tmpl;
  const char* want;
};

std::string TransformLabel(const ::testing::TestParamInfo<TransformCase>& info) {
  return info.param.label;
}

class TransformTest : public ::testing::TestWithParam<TransformCase> {};

TEST_P(TransformTest, ExpandsAsTheDocShows) {
  const TransformCase& c = GetParam();
  auto event = ParseJson(kTransformEvent);
  ASSERT_TRUE(event.ok());
  json paths = {{"timestamp", "$.time"},
                {"instance", "$.detail.instance-id"},
                {"state", "$.detail.state"},
                {"missing", "$.detail.nothing"},
                {"resources", "$.resources"}};
  InputContext context{"example", "arn:aws:events:us-east-2:123456789012:rule/example", ""};
  auto got = TransformInput(*event, paths, c.tmpl, context);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Templates, TransformTest,
    ::testing::Values(
        TransformCase{"SimpleString", R"("instance <instance> is in <state>")",
                      R"("instance i-0123456789 is in RUNNING")"},
        TransformCase{"StringWithEscapedQuotes", R"("instance \"<instance>\" is in <state>")",
                      R"("instance \"i-0123456789\" is in RUNNING")"},
        TransformCase{"SimpleJson", "{\n  \"instance\" : <instance>,\n  \"state\": <state>\n}",
                      R"({"instance":"i-0123456789","state":"RUNNING"})"},
        TransformCase{
            "JsonWithStringsAndVariables",
            R"({"instance" : <instance>, "state": "<state>",
                          "instanceStatus": "instance \"<instance>\" is in <state>"})",
            R"({"instance":"i-0123456789","state":"RUNNING","instanceStatus":"instance \"i-0123456789\" is in RUNNING"})"},
        TransformCase{
            "JsonMix",
            R"({"instance" : <instance>, "state": [ 9, <state>, true ],
                          "Transformed" : "Yes"})",
            R"({"instance":"i-0123456789","state":[9,"RUNNING",true],"Transformed":"Yes"})"},
        TransformCase{
            "ReservedInJson",
            R"({"ruleArn" : <aws.events.rule-arn>, "ruleName" : <aws.events.rule-name>,
                          "id" : "<aws.events.event>"})",
            R"({"ruleArn":"arn:aws:events:us-east-2:123456789012:rule/example","ruleName":"example","id":"{\"account\":\"123456789012\",\"detail\":{\"instance-id\":\"i-0123456789\",\"state\":\"RUNNING\"},\"detail-type\":\"EC2 Instance State-change Notification\",\"id\":\"7bf73129-1428-4cd3-a780-95db273d1602\",\"region\":\"us-east-1\",\"resources\":[\"arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111\"],\"source\":\"aws.ec2\",\"time\":\"2015-11-11T21:29:54Z\",\"version\":\"0\"}"})"},
        TransformCase{"ReservedInString", R"("<aws.events.rule-name> triggered")",
                      R"("example triggered")"},
        TransformCase{
            "WholeEventAsValue", R"({"e": <aws.events.event.json>}.e)",
            R"({"e": {"account":"123456789012","detail":{"instance-id":"i-0123456789","state":"RUNNING"},"detail-type":"EC2 Instance State-change Notification","id":"7bf73129-1428-4cd3-a780-95db273d1602","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],"source":"aws.ec2","time":"2015-11-11T21:29:54Z","version":"0"}}.e)"},
        TransformCase{"ArrayValue", R"({"r": <resources>})",
                      R"({"r":["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"]})"},
        TransformCase{"PlainText", "instance <instance> is in <state> at <timestamp>",
                      "instance i-0123456789 is in RUNNING at 2015-11-11T21:29:54Z"},
        TransformCase{"PlainTextArray", "r=<resources>",
                      R"(r=["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"])"},
        TransformCase{"MissingIsNullInJson", R"({"m": <missing>, "s": "[<missing>]"})",
                      R"({"m":null,"s":"[]"})"},
        TransformCase{"MissingIsEmptyInText", "m=<missing>.", "m=."},
        TransformCase{"UnknownKept", "a <unknown> b <state>", "a <unknown> b RUNNING"},
        TransformCase{"AnglesKept", "1 < 2 > 0 <", "1 < 2 > 0 <"},
        // The ingestion time was not given: the placeholder stays as written.
        TransformCase{"UnsetReservedKept", "<aws.events.event.ingestion-time>",
                      "<aws.events.event.ingestion-time>"}),
    TransformLabel);

TEST(TransformTest, ValuesStayValidJsonInsideStrings) {
  json event = {{"detail", {{"msg", "say \"hi\"\n"}}}};
  auto got = TransformInput(event, json{{"m", "$.detail.msg"}}, R"({"text": "got <m>"})");
  ASSERT_TRUE(got.ok()) << got.status().message();
  auto parsed = ParseJson(*got);
  ASSERT_TRUE(parsed.ok()) << *got;
  EXPECT_EQ((*parsed)["text"], "got say \"hi\"\n");
}

TEST(TransformTest, RefusesAnOversizedResult) {
  json event = {{"big", std::string(10000, 'x')}};
  std::string tmpl;
  for (int i = 0; i < 30; ++i) tmpl += "<aws.events.event>";
  auto got = TransformInput(event, nullptr, tmpl);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  tmpl.resize(tmpl.size() / 3);  // 10 copies: 100 KB
  EXPECT_TRUE(TransformInput(event, nullptr, tmpl).ok());
}

TEST(TransformTest, RefusesBadMapsAndTemplates) {
  json event = {{"a", 1}};
  struct Case {
    const char* label;
    json map;
    std::string tmpl;
  };
  json too_many = json::object();
  for (int i = 0; i <= 100; ++i) too_many["v" + std::to_string(i)] = "$.a";
  for (const Case& c : {
           Case{"NotObject", json::array({"$.a"}), "<a>"},
           Case{"TooMany", too_many, "<v1>"},
           Case{"BadName", json{{"a b", "$.a"}}, "<a>"},
           Case{"ReservedName", json{{"aws.events.event", "$.a"}}, "<a>"},
           Case{"PathNotString", json{{"a", 1}}, "<a>"},
           Case{"BadPath", json{{"a", "a.b"}}, "<a>"},
           Case{"EmptyTemplate", json{{"a", "$.a"}}, ""},
           Case{"LongTemplate", json{{"a", "$.a"}}, std::string(8193, 'x')},
       }) {
    auto got = TransformInput(event, c.map, c.tmpl);
    EXPECT_FALSE(got.ok()) << c.label;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << c.label;
    EXPECT_FALSE(ValidateInputTransformer(c.map, c.tmpl).ok()) << c.label;
  }
  EXPECT_TRUE(ValidateInputTransformer(json{{"a", "$.a"}}, "<a>").ok());
  EXPECT_TRUE(ValidateInputTransformer(nullptr, "constant").ok());
}

}  // namespace
}  // namespace ty::events
