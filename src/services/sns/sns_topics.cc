#include "services/sns/sns_topics.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <regex>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/json.h"

namespace ty::services {
namespace {

using nlohmann::json;
using Ordered = nlohmann::ordered_json;
constexpr size_t kFailuresPerTopic = 20;

std::string IsoMillis(TimePoint t) {
  const int64_t ms = ToEpochMillis(t);
  std::time_t s = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string TopicOfSubscription(const std::string& sub_arn) {
  size_t colon = sub_arn.rfind(':');
  return colon == std::string::npos ? "" : sub_arn.substr(0, colon);
}

// Not AWS's signature (this server holds no AWS signing key): a digest of the notification, so
// the field is present and base64 as handlers expect. Verifying it against AWS's certificate
// fails, as it must.
std::string Signature(const SnsNotification& n) {
  return Base64Encode(HmacSha256(
      "trainyard-sns", n.message_id + "\n" + n.message + "\n" + n.timestamp + "\n" + n.topic_arn));
}

std::string CertUrl(const std::string& region) {
  return "https://sns." + region +
         ".amazonaws.com/SimpleNotificationService-0000000000000000000000000000000.pem";
}

std::string UnsubscribeUrl(const std::string& region, const std::string& sub_arn) {
  return "https://sns." + region + ".amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + sub_arn;
}

Ordered Attributes(const std::map<std::string, SnsMessageAttribute>& attrs) {
  Ordered out = Ordered::object();
  for (const auto& [name, a] : attrs) out[name] = Ordered{{"Type", a.type}, {"Value", a.value}};
  return out;
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

class CurlPoster final : public HttpPoster {
 public:
  control::DeliveryResult Post(const std::string& url,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::string& body) override {
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return control::DeliveryResult::Retry("curl_easy_init failed");
    curl_slist* list = nullptr;
    for (const auto& [k, v] : headers) list = curl_slist_append(list, (k + ": " + v).c_str());
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> owned(list, curl_slist_free_all);
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    // A redirect could lead off this machine.
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Discard);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) return control::DeliveryResult::Retry(curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
      return control::DeliveryResult::Retry("the endpoint answered HTTP " + std::to_string(status));
    }
    return control::DeliveryResult::Delivered();
  }
};

}  // namespace

std::unique_ptr<HttpPoster> MakeCurlPoster() {
  // Once, before any worker's curl_easy_init (which would otherwise do it, unsafely on
  // libcurls older than 7.84).
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::make_unique<CurlPoster>();
}

bool IsLoopbackUrl(const std::string& url, std::string* why) {
  static const std::regex kUrl(
      R"(^(https?)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?(/[^\s]*)?$)");
  std::smatch m;
  if (url.size() > 2048 || !std::regex_match(url, m, kUrl)) {
    *why = "Endpoint must be an http:// or https:// URL";
    return false;
  }
  std::string host = m[2].str();
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  std::string lower = host;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  if (lower == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    if ((ntohl(v4.s_addr) >> 24) == 127) return true;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  *why = "Endpoint host " + host +
         " is not on this machine: http and https subscriptions take only a loopback address "
         "(127.0.0.0/8, ::1 or localhost)";
  return false;
}

std::string LambdaEnvelope(const SnsNotification& n, const std::string& region) {
  Ordered sns;
  sns["Type"] = "Notification";
  sns["MessageId"] = n.message_id;
  sns["TopicArn"] = n.topic_arn;
  sns["Subject"] = n.subject ? Ordered(*n.subject) : Ordered(nullptr);
  sns["Message"] = n.message;
  sns["Timestamp"] = n.timestamp;
  sns["SignatureVersion"] = "1";
  sns["Signature"] = Signature(n);
  sns["SigningCertUrl"] = CertUrl(region);
  sns["UnsubscribeUrl"] = UnsubscribeUrl(region, n.subscription_arn);
  sns["MessageAttributes"] = Attributes(n.attributes);
  Ordered record;
  record["EventSource"] = "aws:sns";
  record["EventVersion"] = "1.0";
  record["EventSubscriptionArn"] = n.subscription_arn;
  record["Sns"] = sns;
  Ordered out;
  out["Records"] = Ordered::array({record});
  return out.dump();
}

std::string HttpBody(const SnsNotification& n, const std::string& region) {
  Ordered body;
  body["Type"] = "Notification";
  body["MessageId"] = n.message_id;
  body["TopicArn"] = n.topic_arn;
  if (n.subject) body["Subject"] = *n.subject;
  body["Message"] = n.message;
  body["Timestamp"] = n.timestamp;
  body["SignatureVersion"] = "1";
  body["Signature"] = Signature(n);
  body["SigningCertURL"] = CertUrl(region);
  body["UnsubscribeURL"] = UnsubscribeUrl(region, n.subscription_arn);
  if (!n.attributes.empty()) body["MessageAttributes"] = Attributes(n.attributes);
  return body.dump();
}

SnsTopics::SnsTopics(SnsOptions options, control::Deliverer* deliveries,
                     control::DeliveryQueue* queue, HttpPoster* poster, const Clock* clock)
    : options_(std::move(options)),
      deliveries_(deliveries),
      queue_(queue),
      poster_(poster),
      clock_(clock) {}

Result<std::unique_ptr<SnsTopics>> SnsTopics::Open(SnsOptions options,
                                                   control::Deliverer* deliveries,
                                                   control::DeliveryQueue* queue,
                                                   HttpPoster* poster, const Clock* clock) {
  std::unique_ptr<SnsTopics> t(new SnsTopics(std::move(options), deliveries, queue, poster, clock));
  TY_RETURN_IF_ERROR(t->Load());
  return t;
}

Status SnsTopics::Load() {
  if (options_.data_dir.empty()) return Status::Ok();
  const std::string path = JoinPath(options_.data_dir, "sns.json");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::Ok();
  TY_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto parsed = ParseJson(text);
  if (!parsed.ok()) return parsed.status().WithPrefix(path);
  const json& doc = *parsed;
  MutexLock lock(&mu_);
  // A file edited by hand may lack members: refuse it with its name rather than throw.
  try {
    for (const auto& j : doc.value("topics", json::array())) {
      SnsTopic t{j.at("arn"), j.at("name"), j.at("owner"), j.value("display_name", ""), {}};
      for (const auto& s : j.value("subscriptions", json::array())) {
        t.subscriptions.push_back({s.at("arn"), t.arn, t.owner, s.at("protocol"), s.at("endpoint"),
                                   s.value("raw", false)});
      }
      topics_[t.arn] = std::move(t);
    }
  } catch (const json::exception& e) {
    return InvalidArgument(path + ": not an SNS file of this server: " + e.what());
  }
  return Status::Ok();
}

void SnsTopics::Persist() {
  if (options_.data_dir.empty()) return;
  std::string text;
  int64_t version = 0;
  {
    MutexLock lock(&mu_);
    json topics = json::array();
    for (const auto& [arn, t] : topics_) {
      json subs = json::array();
      for (const auto& s : t.subscriptions) {
        subs.push_back(
            {{"arn", s.arn}, {"protocol", s.protocol}, {"endpoint", s.endpoint}, {"raw", s.raw}});
      }
      topics.push_back({{"arn", t.arn},
                        {"name", t.name},
                        {"owner", t.owner},
                        {"display_name", t.display_name},
                        {"subscriptions", subs}});
    }
    text = json{{"topics", topics}}.dump();
    version = version_;
  }
  MutexLock lock(&file_mu_);
  if (version <= written_version_) return;
  Status s = WriteFileAtomic(JoinPath(options_.data_dir, "sns.json"), text, 0600);
  if (!s.ok()) {
    std::fprintf(stderr, "trainyard: saving SNS topics failed: %s\n", s.ToString().c_str());
    return;
  }
  written_version_ = version;
}

Result<std::string> SnsTopics::CreateTopic(const std::string& account, const std::string& name,
                                           const std::string& display_name) {
  static const std::regex kName("[A-Za-z0-9_-]{1,256}");
  if (!std::regex_match(name, kName)) {
    return InvalidArgument(
        "Invalid parameter: Topic Name (names hold 1 to 256 letters, digits, hyphens and "
        "underscores; FIFO topics are not served)");
  }
  const std::string arn = "arn:aws:sns:" + options_.region + ":" + account + ":" + name;
  {
    MutexLock lock(&mu_);
    if (topics_.count(arn) != 0) return arn;  // idempotent by name
    size_t mine = 0;
    for (const auto& [a, t] : topics_) mine += t.owner == account;
    if (mine >= options_.max_topics_per_account) {
      return ResourceExhausted("Topic limit exceeded");
    }
    topics_[arn] = SnsTopic{arn, name, account, display_name, {}};
    ++version_;
  }
  Persist();
  return arn;
}

void SnsTopics::DeleteTopic(const std::string& account, const std::string& topic_arn) {
  {
    MutexLock lock(&mu_);
    auto it = topics_.find(topic_arn);
    if (it == topics_.end() || it->second.owner != account) return;
    topics_.erase(it);
    failures_.erase(topic_arn);
    ++version_;
  }
  Persist();
}

std::vector<SnsTopic> SnsTopics::ListTopics(const std::string& account) const {
  MutexLock lock(&mu_);
  std::vector<SnsTopic> out;
  for (const auto& [arn, t] : topics_) {
    if (t.owner == account) out.push_back(t);
  }
  return out;
}

Result<SnsTopic> SnsTopics::GetTopic(const std::string& account,
                                     const std::string& topic_arn) const {
  MutexLock lock(&mu_);
  auto it = topics_.find(topic_arn);
  if (it == topics_.end() || it->second.owner != account) {
    return NotFound("Topic does not exist");
  }
  return it->second;
}

Result<std::string> SnsTopics::Subscribe(const std::string& account, const std::string& topic_arn,
                                         const std::string& protocol, const std::string& endpoint,
                                         bool raw) {
  if (protocol == "http" || protocol == "https") {
    std::string why;
    if (!IsLoopbackUrl(endpoint, &why)) return InvalidArgument("Invalid parameter: " + why);
    if (endpoint.rfind(protocol + "://", 0) != 0) {
      return InvalidArgument("Invalid parameter: Endpoint must match the protocol " + protocol);
    }
  } else if (protocol == "lambda") {
    static const std::regex kFunction(
        R"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:(\d{12}):function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]+)?)");
    std::smatch m;
    if (!std::regex_match(endpoint, m, kFunction)) {
      return InvalidArgument("Invalid parameter: Lambda endpoint must be a function ARN");
    }
    if (m[1].str() != account) {
      return InvalidArgument("Invalid parameter: the function must be in the topic's account (" +
                             account + ")");
    }
  } else {
    return InvalidArgument("Invalid parameter: Protocol " + protocol +
                           " is not served here (use lambda, http or https)");
  }
  std::string arn;
  {
    MutexLock lock(&mu_);
    auto it = topics_.find(topic_arn);
    if (it == topics_.end() || it->second.owner != account) {
      return NotFound("Topic does not exist");
    }
    SnsTopic& t = it->second;
    for (const auto& s : t.subscriptions) {
      if (s.protocol == protocol && s.endpoint == endpoint) return s.arn;
    }
    if (t.subscriptions.size() >= options_.max_subscriptions_per_topic) {
      return ResourceExhausted("Subscription limit exceeded");
    }
    arn = topic_arn + ":" + RandomUuid();
    t.subscriptions.push_back({arn, topic_arn, account, protocol, endpoint, raw});
    ++version_;
  }
  Persist();
  return arn;
}

Status SnsTopics::Unsubscribe(const std::string& account, const std::string& subscription_arn) {
  {
    MutexLock lock(&mu_);
    auto it = topics_.find(TopicOfSubscription(subscription_arn));
    if (it == topics_.end() || it->second.owner != account) {
      return NotFound("Subscription does not exist");
    }
    auto& subs = it->second.subscriptions;
    auto s = std::find_if(subs.begin(), subs.end(),
                          [&](const SnsSubscription& x) { return x.arn == subscription_arn; });
    if (s == subs.end()) return NotFound("Subscription does not exist");
    subs.erase(s);
    ++version_;
  }
  Persist();
  return Status::Ok();
}

Result<SnsSubscription> SnsTopics::GetSubscription(const std::string& account,
                                                   const std::string& subscription_arn) const {
  MutexLock lock(&mu_);
  auto it = topics_.find(TopicOfSubscription(subscription_arn));
  if (it != topics_.end() && it->second.owner == account) {
    for (const auto& s : it->second.subscriptions) {
      if (s.arn == subscription_arn) return s;
    }
  }
  return NotFound("Subscription does not exist");
}

std::vector<SnsSubscription> SnsTopics::ListSubscriptions(const std::string& account) const {
  MutexLock lock(&mu_);
  std::vector<SnsSubscription> out;
  for (const auto& [arn, t] : topics_) {
    if (t.owner != account) continue;
    out.insert(out.end(), t.subscriptions.begin(), t.subscriptions.end());
  }
  return out;
}

std::vector<control::DeliveryFailure> SnsTopics::Failures(const std::string& topic_arn) const {
  MutexLock lock(&mu_);
  auto it = failures_.find(topic_arn);
  if (it == failures_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

void SnsTopics::RecordFailure(const std::string& topic_arn, control::DeliveryFailure f) {
  MutexLock lock(&mu_);
  if (topics_.count(topic_arn) == 0) return;
  auto& list = failures_[topic_arn];
  list.push_front(std::move(f));
  while (list.size() > kFailuresPerTopic) list.pop_back();
}

Result<std::string> SnsTopics::Publish(const SnsPublish& p) {
  std::vector<SnsSubscription> subs;
  {
    MutexLock lock(&mu_);
    auto it = topics_.find(p.topic_arn);
    if (it == topics_.end() || it->second.owner != p.account) {
      return NotFound("Topic does not exist");
    }
    subs = it->second.subscriptions;
  }
  SnsNotification base;
  base.message_id = RandomUuid();
  base.topic_arn = p.topic_arn;
  base.subject = p.subject;
  base.timestamp = IsoMillis(clock_->Now());
  base.attributes = p.attributes;
  for (const SnsSubscription& s : subs) {
    SnsNotification n = base;
    n.subscription_arn = s.arn;
    n.message = p.message;
    if (!p.per_protocol.empty()) {
      auto own = p.per_protocol.find(s.protocol);
      n.message = own != p.per_protocol.end() ? own->second : p.per_protocol.at("default");
    }
    control::DeliveryQueue::Attempt attempt;
    if (s.protocol == "lambda") {
      control::Delivery d;
      d.account = p.account;
      d.target_arn = s.endpoint;
      d.payload = LambdaEnvelope(n, options_.region);
      d.principal = "sns.amazonaws.com";
      d.source_arn = p.topic_arn;
      control::Deliverer* deliveries = deliveries_;
      attempt = [deliveries, d] {
        return deliveries != nullptr ? deliveries->Deliver(d)
                                     : control::DeliveryResult::Failed("no Lambda deliverer");
      };
    } else {
      std::vector<std::pair<std::string, std::string>> headers = {
          {"Content-Type", "text/plain; charset=UTF-8"},
          {"User-Agent", "Amazon Simple Notification Service Agent"},
          {"x-amz-sns-message-type", "Notification"},
          {"x-amz-sns-message-id", n.message_id},
          {"x-amz-sns-topic-arn", n.topic_arn},
          {"x-amz-sns-subscription-arn", s.arn},
      };
      if (s.raw) headers.emplace_back("x-amz-sns-rawdelivery", "true");
      std::string body = s.raw ? n.message : HttpBody(n, options_.region);
      HttpPoster* poster = poster_;
      const std::string url = s.endpoint;
      attempt = [poster, url, headers, body] { return poster->Post(url, headers, body); };
    }
    const std::string topic = p.topic_arn, what = s.arn;
    auto done = [this, topic, what](const control::DeliveryResult& r, int attempts) {
      if (!r.ok()) RecordFailure(topic, {clock_->Now(), what, r.error, attempts});
    };
    if (!queue_->Enqueue(s.arn, std::move(attempt), done)) {
      done(control::DeliveryResult::Failed("the delivery queue is full"), 0);
    }
  }
  return base.message_id;
}

control::DeliveryResult SnsTopics::Deliver(const control::Delivery& d) {
  SnsPublish p;
  p.account = d.account;
  p.topic_arn = d.target_arn;
  if (!d.subject.empty()) p.subject = d.subject;
  p.message = d.payload;
  auto id = Publish(p);
  if (!id.ok()) return control::DeliveryResult::Failed(id.status().message() + ": " + d.target_arn);
  return control::DeliveryResult::Delivered();
}

}  // namespace ty::services
