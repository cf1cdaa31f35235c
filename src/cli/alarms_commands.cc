#include "cli/alarms_commands.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iomanip>

#include <nlohmann/json.hpp>

#include "api/service_model.h"
#include "cli/client.h"
#include "common/sigv4.h"

namespace ty::cli {
namespace {

using nlohmann::json;

constexpr int kMaxXmlDepth = 64;

std::string XmlUnescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string::npos || semi - i > 10) {
      out += s[i];
      continue;
    }
    const std::string ent = s.substr(i + 1, semi - i - 1);
    if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "amp")
      out += '&';
    else if (ent == "quot")
      out += '"';
    else if (ent == "apos")
      out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X')
                             ? std::strtoul(ent.c_str() + 2, nullptr, 16)
                             : std::strtoul(ent.c_str() + 1, nullptr, 10);
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xE0 | ((cp >> 12) & 0x0F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

// A recursive-descent reader of the XML subset AWS query responses use (no attributes that
// matter, no CDATA, no comments).
class XmlReader {
 public:
  explicit XmlReader(const std::string& s) : s_(s) {}

  bool Element(std::string* name, json* value, int depth) {
    if (depth > kMaxXmlDepth) return Fail("too deep");
    SkipSpace();
    if (!Consume('<')) return Fail("expected <");
    size_t end = s_.find_first_of(" \t\r\n/>", pos_);
    if (end == std::string::npos) return Fail("unterminated tag");
    *name = s_.substr(pos_, end - pos_);
    size_t close = s_.find('>', end);
    if (close == std::string::npos) return Fail("unterminated tag");
    const bool empty = s_[close - 1] == '/';
    pos_ = close + 1;
    if (empty) {
      *value = "";
      return true;
    }
    SkipSpace();
    if (pos_ + 1 < s_.size() && s_[pos_] == '<' && s_[pos_ + 1] != '/') {
      json obj = json::object();
      json list = json::array();
      bool is_list = false, is_map = false;
      while (pos_ + 1 < s_.size() && s_[pos_] == '<' && s_[pos_ + 1] != '/') {
        std::string child;
        json v;
        if (!Element(&child, &v, depth + 1)) return false;
        if (child == "member") {
          is_list = true;
          list.push_back(std::move(v));
        } else if (child == "entry" && v.is_object() && v.contains("key") && v["key"].is_string()) {
          is_map = true;
          obj[v["key"].get<std::string>()] = v.value("value", json(""));
        } else {
          obj[child] = std::move(v);
        }
        SkipSpace();
      }
      *value = is_list ? list : (is_map || !obj.empty() ? obj : json::object());
    } else {
      size_t lt = s_.find('<', pos_);
      if (lt == std::string::npos) return Fail("unterminated text");
      *value = XmlUnescape(s_.substr(pos_, lt - pos_));
      pos_ = lt;
    }
    const std::string closing = "</" + *name + ">";
    if (s_.compare(pos_, closing.size(), closing) != 0) return Fail("expected " + closing);
    pos_ += closing.size();
    return true;
  }

  void SkipProlog() {
    SkipSpace();
    if (s_.compare(pos_, 5, "<?xml") == 0) {
      size_t end = s_.find("?>", pos_);
      pos_ = end == std::string::npos ? s_.size() : end + 2;
    }
  }
  const std::string& error() const { return error_; }

 private:
  void SkipSpace() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Fail(std::string why) {
    error_ = std::move(why);
    return false;
  }
  const std::string& s_;
  size_t pos_ = 0;
  std::string error_;
};

std::string FormEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<Endpoint> Resolve(const std::string& flag) {
  auto endpoint = ResolveEndpoint(flag);
  if (!endpoint.ok() && endpoint.status().code() == StatusCode::kNotFound) {
    return NotFound(
        "no Trainyard server configured: pass --endpoint-url, set AWS_ENDPOINT_URL, or start "
        "one with `trainyard server`");
  }
  return endpoint;
}

// One SNS call in the AWS query protocol: `params` are flat string members.
Result<json> SnsCall(const Endpoint& ep, const std::string& action,
                     const std::vector<std::pair<std::string, std::string>>& params) {
  std::string body = "Action=" + action + "&Version=2010-03-31";
  for (const auto& [k, v] : params) body += "&" + FormEncode(k) + "=" + FormEncode(v);
  std::string rest = ep.url.substr(ep.url.find("://") + 3);
  HttpRequestParts req;
  req.method = "POST";
  req.path = "/";
  req.body = body;
  const std::string content_type = "application/x-www-form-urlencoded; charset=utf-8";
  req.headers = {{"Host", rest.substr(0, rest.find('/'))}, {"Content-Type", content_type}};
  SignRequest(&req, ep.credentials, ep.region, "sns", std::chrono::system_clock::now());
  httplib::Headers headers;
  for (const auto& [k, v] : req.headers) {
    if (k != "Host" && k != "Content-Type") headers.emplace(k, v);
  }
  httplib::Client http(ep.url);
  http.set_connection_timeout(2, 0);
  http.set_read_timeout(60, 0);
  auto res = http.Post("/", headers, body, content_type);
  if (!res) {
    return Unavailable("cannot reach the Trainyard server at " + ep.url + ": " +
                       httplib::to_string(res.error()));
  }
  std::string text, error;
  if (!QueryXmlToJson(res->body, &text, &error)) {
    return Internal("unreadable SNS answer (" + error + "): " + res->body.substr(0, 200));
  }
  json doc = json::parse(text);
  if (res->status != 200) {
    const json e = doc.value("ErrorResponse", json::object()).value("Error", json::object());
    std::string code = e.value("Code", "Error"), message = e.value("Message", res->body);
    if (code == "NotFound") return NotFound(code + ": " + message);
    return InvalidArgument(code + ": " + message);
  }
  const json response = doc.value(action + "Response", json::object());
  return response.value(action + "Result", json::object());
}

std::string TimeText(double epoch_seconds) {
  std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

int TopicsList(const Endpoint& ep, std::ostream& out, std::ostream& err) {
  std::vector<std::string> arns;
  std::string token;
  do {
    std::vector<std::pair<std::string, std::string>> params;
    if (!token.empty()) params.emplace_back("NextToken", token);
    auto page = SnsCall(ep, "ListTopics", params);
    if (!page.ok()) return err << "trainyard: " << page.status().message() << "\n", 1;
    for (const auto& t : page->value("Topics", json::array())) {
      arns.push_back(t.value("TopicArn", ""));
    }
    token = page->value("NextToken", "");
  } while (!token.empty());
  if (arns.empty()) {
    out << "no topics\n";
    return 0;
  }
  out << std::left << std::setw(64) << "TOPIC"
      << "SUBSCRIPTIONS\n";
  for (const auto& arn : arns) {
    auto attrs = SnsCall(ep, "GetTopicAttributes", {{"TopicArn", arn}});
    std::string subs =
        attrs.ok() ? attrs->value("Attributes", json::object()).value("SubscriptionsConfirmed", "?")
                   : "?";
    out << std::left << std::setw(64) << arn << subs << "\n";
  }
  return 0;
}

int TopicsDescribe(const Endpoint& ep, const std::string& name, std::ostream& out,
                   std::ostream& err) {
  std::string arn = name;
  if (name.rfind("arn:", 0) != 0) {
    auto page = SnsCall(ep, "ListTopics", {});
    if (!page.ok()) return err << "trainyard: " << page.status().message() << "\n", 1;
    arn.clear();
    std::string token;
    json topics = page->value("Topics", json::array());
    for (const auto& t : topics) {
      const std::string a = t.value("TopicArn", "");
      if (a.size() > name.size() &&
          a.compare(a.size() - name.size() - 1, std::string::npos, ":" + name) == 0) {
        arn = a;
      }
    }
    if (arn.empty()) return err << "trainyard: no topic named " << name << "\n", 1;
  }
  auto attrs = SnsCall(ep, "GetTopicAttributes", {{"TopicArn", arn}});
  if (!attrs.ok()) return err << "trainyard: " << attrs.status().message() << "\n", 1;
  const json a = attrs->value("Attributes", json::object());
  out << "Topic:         " << arn << "\n";
  if (!a.value("DisplayName", "").empty()) out << "Display name:  " << a["DisplayName"] << "\n";
  out << "Owner:         " << a.value("Owner", "") << "\n";
  auto subs = SnsCall(ep, "ListSubscriptionsByTopic", {{"TopicArn", arn}});
  if (!subs.ok()) return err << "trainyard: " << subs.status().message() << "\n", 1;
  const json list = subs->value("Subscriptions", json::array());
  out << "Subscriptions: " << list.size() << "\n";
  for (const auto& s : list) {
    out << "  " << s.value("Protocol", "") << "  " << s.value("Endpoint", "") << "\n"
        << "    " << s.value("SubscriptionArn", "") << "\n";
  }
  auto failures = json::parse(a.value("RecentDeliveryFailures", "[]"), nullptr, false);
  if (failures.is_array() && !failures.empty()) {
    out << "Recent delivery failures:\n";
    for (const auto& f : failures) {
      out << "  " << f.value("Time", "") << "  " << f.value("SubscriptionArn", "") << " ("
          << f.value("Attempts", 0) << " attempts): " << f.value("Error", "") << "\n";
    }
  }
  return 0;
}

int AlarmsList(ApiClient& client, const std::string& state, std::ostream& out, std::ostream& err) {
  auto model = api::ServiceModel::Embedded("cloudwatch");
  std::vector<json> alarms;
  std::string token;
  do {
    json req = {{"MaxRecords", 100}};
    if (!state.empty()) req["StateValue"] = state;
    if (!token.empty()) req["NextToken"] = token;
    auto page = client.Call(*model, "DescribeAlarms", req);
    if (!page.ok()) return err << "trainyard: " << page.status().message() << "\n", 1;
    for (const auto& a : page->value("MetricAlarms", json::array())) alarms.push_back(a);
    token = page->value("NextToken", "");
  } while (!token.empty());
  if (alarms.empty()) {
    out << "no alarms\n";
    return 0;
  }
  out << std::left << std::setw(32) << "ALARM" << std::setw(19) << "STATE"
      << "METRIC\n";
  for (const auto& a : alarms) {
    std::string dims;
    for (const auto& d : a.value("Dimensions", json::array())) {
      dims += (dims.empty() ? "" : ",") + d.value("Name", "") + "=" + d.value("Value", "");
    }
    const std::string stat = a.value("Statistic", a.value("ExtendedStatistic", ""));
    out << std::left << std::setw(32) << a.value("AlarmName", "") << std::setw(19)
        << a.value("StateValue", "") << a.value("Namespace", "") << " " << a.value("MetricName", "")
        << (dims.empty() ? "" : " {" + dims + "}") << " " << stat << " "
        << a.value("ComparisonOperator", "") << " " << Num(a.value("Threshold", 0.0)) << "\n";
  }
  return 0;
}

int AlarmsDescribe(ApiClient& client, const std::string& name, bool as_json, std::ostream& out,
                   std::ostream& err) {
  auto model = api::ServiceModel::Embedded("cloudwatch");
  auto res = client.Call(*model, "DescribeAlarms", json{{"AlarmNames", {name}}});
  if (!res.ok()) return err << "trainyard: " << res.status().message() << "\n", 1;
  const json list = res->value("MetricAlarms", json::array());
  if (list.empty()) return err << "trainyard: no alarm named " << name << "\n", 1;
  const json& a = list[0];
  auto history =
      client.Call(*model, "DescribeAlarmHistory", json{{"AlarmName", name}, {"MaxRecords", 10}});
  if (as_json) {
    json doc = {{"MetricAlarm", a}};
    if (history.ok()) doc["AlarmHistoryItems"] = history->value("AlarmHistoryItems", json::array());
    out << doc.dump(2) << "\n";
    return 0;
  }
  std::string dims;
  for (const auto& d : a.value("Dimensions", json::array())) {
    dims += (dims.empty() ? "" : ", ") + d.value("Name", "") + "=" + d.value("Value", "");
  }
  out << "Alarm:      " << a.value("AlarmName", "") << "\n"
      << "ARN:        " << a.value("AlarmArn", "") << "\n"
      << "State:      " << a.value("StateValue", "") << " since "
      << TimeText(a.value("StateUpdatedTimestamp", 0.0)) << "\n"
      << "Reason:     " << a.value("StateReason", "") << "\n"
      << "Metric:     " << a.value("Namespace", "") << " " << a.value("MetricName", "")
      << (dims.empty() ? "" : " {" + dims + "}") << "\n"
      << "Rule:       " << a.value("Statistic", a.value("ExtendedStatistic", "")) << " over "
      << a.value("Period", 0) << " s, " << a.value("DatapointsToAlarm", 0) << " of "
      << a.value("EvaluationPeriods", 0) << " " << a.value("ComparisonOperator", "") << " "
      << Num(a.value("Threshold", 0.0))
      << ", missing data: " << a.value("TreatMissingData", "missing") << "\n"
      << "Actions:    " << (a.value("ActionsEnabled", true) ? "enabled" : "disabled") << "\n";
  for (const char* kind : {"AlarmActions", "OKActions", "InsufficientDataActions"}) {
    for (const auto& arn : a.value(kind, json::array())) {
      out << "  " << kind << ": " << arn.get<std::string>() << "\n";
    }
  }
  if (history.ok()) {
    out << "History (newest first):\n";
    for (const auto& h : history->value("AlarmHistoryItems", json::array())) {
      out << "  " << TimeText(h.value("Timestamp", 0.0)) << "  " << h.value("HistoryItemType", "")
          << "  " << h.value("HistorySummary", "") << "\n";
    }
  }
  return 0;
}

}  // namespace

bool QueryXmlToJson(const std::string& xml, std::string* json_text, std::string* error) {
  XmlReader r(xml);
  r.SkipProlog();
  std::string name;
  json value;
  if (!r.Element(&name, &value, 0)) {
    *error = r.error();
    return false;
  }
  // Invalid UTF-8 in the answer is replaced rather than thrown on.
  *json_text = json{{name, value}}.dump(-1, ' ', false, json::error_handler_t::replace);
  return true;
}

AlarmsCommands::AlarmsCommands(CLI::App& app) {
  topics_ = app.add_subcommand("topics", "List and describe SNS topics");
  topics_->require_subcommand(1);
  topics_->add_option("--endpoint-url", endpoint_, "Server URL");
  topics_list_ = topics_->add_subcommand("list", "List the account's topics");
  topics_describe_ =
      topics_->add_subcommand("describe", "Show a topic, its subscriptions and failures");
  topics_describe_->add_option("topic", name_, "Topic name or ARN")->required();

  alarms_ = app.add_subcommand("alarms", "List and describe CloudWatch metric alarms");
  alarms_->require_subcommand(1);
  alarms_->add_option("--endpoint-url", endpoint_, "Server URL");
  alarms_list_ = alarms_->add_subcommand("list", "List the account's alarms");
  alarms_list_->add_option("--state", state_, "Only alarms in OK, ALARM or INSUFFICIENT_DATA");
  alarms_describe_ = alarms_->add_subcommand("describe", "Show an alarm and its recent history");
  alarms_describe_->add_option("name", name_, "Alarm name")->required();
  alarms_describe_->add_flag("--json", as_json_, "Print the DescribeAlarms answer and history");
}

bool AlarmsCommands::chosen() const { return *topics_ || *alarms_; }

int AlarmsCommands::Run(std::ostream& out, std::ostream& err) {
  auto ep = Resolve(endpoint_);
  if (!ep.ok()) return err << "trainyard: " << ep.status().message() << "\n", 2;
  if (*topics_list_) return TopicsList(*ep, out, err);
  if (*topics_describe_) return TopicsDescribe(*ep, name_, out, err);
  ApiClient client(*ep);
  if (*alarms_list_) return AlarmsList(client, state_, out, err);
  if (*alarms_describe_) return AlarmsDescribe(client, name_, as_json_, out, err);
  return 2;
}

}  // namespace ty::cli
