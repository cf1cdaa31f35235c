#include "cli/functions_commands.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "api/service_model.h"
#include "cli/client.h"
#include "common/crypto.h"
#include "common/json.h"

namespace ty::cli {

namespace {

using nlohmann::json;

constexpr char kBase[] = "/2015-03-31/functions";

// The reply's JSON body, or the Lambda error it carries as a Status.
Result<json> JsonReply(const Result<ApiClient::RestReply>& reply) {
  if (!reply.ok()) return reply.status();
  auto parsed = reply->body.empty() ? Result<json>(json::object()) : ParseJson(reply->body);
  if (reply->status >= 300) {
    std::string type = reply->Header("X-Amzn-ErrorType");
    if (size_t colon = type.find(':'); colon != std::string::npos) type.resize(colon);
    std::string message = parsed.ok() && parsed->is_object()
                              ? parsed->value("message", parsed->value("Message", reply->body))
                              : reply->body;
    StatusCode code = reply->status >= 500                  ? StatusCode::kUnavailable
                      : type == "ResourceNotFoundException" ? StatusCode::kNotFound
                                                            : StatusCode::kInvalidArgument;
    return Status(code,
                  (type.empty() ? "HTTP " + std::to_string(reply->status) : type) + ": " + message);
  }
  if (!parsed.ok()) return Internal("the server sent malformed JSON");
  return std::move(parsed).value();
}

std::string Pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

}  // namespace

FunctionsCommands::FunctionsCommands(CLI::App& app) {
  group_ = app.add_subcommand("functions", "Lambda functions of your account on the server");
  group_->require_subcommand(1);
  group_->add_option("--endpoint-url", endpoint_url_,
                     "The server (default: as AWS clients find it)");
  list_ = group_->add_subcommand("list", "List the functions");
  list_->add_flag("--json", as_json_, "Print the ListFunctions response");
  describe_ = group_->add_subcommand("describe", "Show a function's configuration");
  describe_->add_option("name", name_, "Function name or ARN")->required();
  describe_->add_flag("--json", as_json_, "Print the GetFunction response");
  invoke_ = group_->add_subcommand("invoke", "Invoke a function and print what it returns");
  invoke_->add_option("name", name_, "Function name or ARN")->required();
  invoke_->add_option("--payload", payload_, "The event, JSON (default {})");
  invoke_->add_flag("--log", show_log_, "Also print the invocation's log (last 4 KB) to stderr");
  logs_ = group_->add_subcommand("logs", "Print a function's log (/aws/lambda/NAME)");
  logs_->add_option("name", name_, "Function name")->required();
  logs_->add_option("--limit", limit_, "At most this many lines, the newest (default 1000)");
}

bool FunctionsCommands::chosen() const { return group_->parsed(); }

int FunctionsCommands::Run(std::ostream& out, std::ostream& err) {
  auto endpoint = ResolveEndpoint(endpoint_url_);
  if (!endpoint.ok()) {
    err << "trainyard: " << endpoint.status().message() << "\n";
    return 1;
  }
  ApiClient client(*endpoint);
  auto fail = [&err](const Status& s) {
    err << "trainyard: " << s.message() << "\n";
    return 1;
  };
  if (list_->parsed()) {
    json all = json::array();
    std::string marker;
    for (int page = 0; page < 1000; ++page) {
      std::string query = "MaxItems=50";
      if (!marker.empty()) query += "&Marker=" + marker;
      auto r = JsonReply(client.CallRest("lambda", "GET", kBase, query, ""));
      if (!r.ok()) return fail(r.status());
      for (auto& f : r->value("Functions", json::array())) all.push_back(f);
      marker = r->value("NextMarker", "");
      if (marker.empty()) break;
    }
    if (as_json_) {
      out << json{{"Functions", all}}.dump(2) << "\n";
      return 0;
    }
    out << Pad("NAME", 32) << Pad("RUNTIME", 12) << Pad("MEMORY", 8) << Pad("TIMEOUT", 9)
        << "LAST MODIFIED\n";
    for (const auto& f : all) {
      out << Pad(f.value("FunctionName", ""), 32) << Pad(f.value("Runtime", ""), 12)
          << Pad(std::to_string(f.value("MemorySize", 0)), 8)
          << Pad(std::to_string(f.value("Timeout", 0)) + "s", 9) << f.value("LastModified", "")
          << "\n";
    }
    return 0;
  }
  const std::string path = std::string(kBase) + "/" + name_;
  if (describe_->parsed()) {
    auto r = JsonReply(client.CallRest("lambda", "GET", path, "", ""));
    if (!r.ok()) return fail(r.status());
    if (as_json_) {
      out << r->dump(2) << "\n";
      return 0;
    }
    const json c = r->value("Configuration", json::object());
    for (const char* k : {"FunctionName", "FunctionArn", "Runtime", "Handler", "MemorySize",
                          "Timeout", "CodeSize", "CodeSha256", "LastModified", "State"}) {
      if (c.contains(k)) {
        out << Pad(std::string(k) + ":", 15)
            << (c[k].is_string() ? c[k].get<std::string>() : c[k].dump()) << "\n";
      }
    }
    if (c.contains("Environment")) {
      out << Pad("Environment:", 15) << c["Environment"].value("Variables", json::object()).dump()
          << "\n";
    }
    auto policy = JsonReply(client.CallRest("lambda", "GET", path + "/policy", "", ""));
    if (policy.ok()) out << Pad("Policy:", 15) << policy->value("Policy", "") << "\n";
    return 0;
  }
  if (invoke_->parsed()) {
    if (!ParseJson(payload_).ok()) {
      err << "trainyard: --payload is not valid JSON\n";
      return 2;
    }
    auto reply = client.CallRest("lambda", "POST", path + "/invocations", "", payload_,
                                 {{"X-Amz-Log-Type", "Tail"}});
    if (!reply.ok()) return fail(reply.status());
    if (reply->status >= 300) {
      auto r = JsonReply(reply);
      return fail(r.status());
    }
    if (show_log_) {
      std::string log;
      if (Base64Decode(reply->Header("X-Amz-Log-Result"), &log)) err << log;
    }
    out << reply->body << "\n";
    return reply->Header("X-Amz-Function-Error").empty() ? 0 : 1;
  }
  if (logs_->parsed()) {
    auto logs = api::ServiceModel::Embedded("logs");
    std::vector<std::string> lines;
    std::string token;
    for (int page = 0; page < 10000; ++page) {
      json body = {{"logGroupName", "/aws/lambda/" + name_}};
      if (!token.empty()) body["nextToken"] = token;
      auto r = client.Call(*logs, "FilterLogEvents", body);
      if (!r.ok()) return fail(r.status());
      for (const auto& e : r->value("events", json::array())) {
        lines.push_back(e.value("message", ""));
        if (lines.size() > static_cast<size_t>(limit_) * 2) {
          lines.erase(lines.begin(), lines.end() - limit_);
        }
      }
      token = r->value("nextToken", "");
      if (token.empty()) break;
    }
    size_t from = lines.size() > static_cast<size_t>(limit_) ? lines.size() - limit_ : 0;
    for (size_t i = from; i < lines.size(); ++i) out << lines[i] << "\n";
    return 0;
  }
  return 2;
}

}  // namespace ty::cli
