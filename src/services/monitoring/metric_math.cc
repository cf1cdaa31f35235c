#include "services/monitoring/metric_math.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>
#include <vector>

namespace ty::services {
namespace {

constexpr size_t kMaxLength = 2048;
constexpr int kMaxDepth = 32;

class Parser {
 public:
  Parser(const std::string& text, const std::map<std::string, TimeSeries>* series)
      : s_(text), series_(series) {}

  Result<MathValue> Parse() {
    if (s_.size() > kMaxLength) return Error("is longer than 2048 characters");
    auto v = Expr(0);
    if (!v.ok()) return v;
    Skip();
    if (pos_ != s_.size()) return Error("has unexpected text at position " + std::to_string(pos_));
    return v;
  }
  std::vector<std::string> ids;  // every id met, in order

 private:
  Status Error(const std::string& what) const {
    return InvalidArgument("The expression \"" + s_.substr(0, 200) + "\" " + what + ".");
  }
  void Skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Eat(char c) {
    Skip();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  static MathValue Apply(const MathValue& a, const MathValue& b, char op) {
    auto f = [op](double x, double y) {
      switch (op) {
        case '+':
          return x + y;
        case '-':
          return x - y;
        case '*':
          return x * y;
        default:
          return x / y;
      }
    };
    const double* sa = std::get_if<double>(&a);
    const double* sb = std::get_if<double>(&b);
    if (sa && sb) return f(*sa, *sb);
    TimeSeries out;
    if (sa) {
      for (const auto& [t, v] : std::get<TimeSeries>(b)) out[t] = f(*sa, v);
    } else if (sb) {
      for (const auto& [t, v] : std::get<TimeSeries>(a)) out[t] = f(v, *sb);
    } else {
      const auto& tb = std::get<TimeSeries>(b);
      for (const auto& [t, v] : std::get<TimeSeries>(a)) {
        auto it = tb.find(t);
        if (it != tb.end()) out[t] = f(v, it->second);
      }
    }
    // A division by zero has no value, as in CloudWatch (no Infinity in answers).
    for (auto it = out.begin(); it != out.end();) {
      it = std::isfinite(it->second) ? std::next(it) : out.erase(it);
    }
    return out;
  }

  Result<MathValue> Expr(int depth) {
    if (depth > kMaxDepth) return Error("is nested too deeply");
    TY_ASSIGN_OR_RETURN(MathValue v, Term(depth));
    for (;;) {
      Skip();
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
        char op = s_[pos_++];
        TY_ASSIGN_OR_RETURN(MathValue r, Term(depth));
        v = Apply(v, r, op);
      } else {
        return v;
      }
    }
  }

  Result<MathValue> Term(int depth) {
    TY_ASSIGN_OR_RETURN(MathValue v, Factor(depth));
    for (;;) {
      Skip();
      if (pos_ < s_.size() && (s_[pos_] == '*' || s_[pos_] == '/')) {
        char op = s_[pos_++];
        TY_ASSIGN_OR_RETURN(MathValue r, Factor(depth));
        v = Apply(v, r, op);
      } else {
        return v;
      }
    }
  }

  Result<MathValue> Factor(int depth) {
    if (depth > kMaxDepth) return Error("is nested too deeply");
    Skip();
    if (pos_ >= s_.size()) return Error("ends unexpectedly");
    char c = s_[pos_];
    if (c == '-') {
      ++pos_;
      TY_ASSIGN_OR_RETURN(MathValue v, Factor(depth + 1));
      return Apply(0.0, v, '-');
    }
    if (c == '(') {
      ++pos_;
      TY_ASSIGN_OR_RETURN(MathValue v, Expr(depth + 1));
      if (!Eat(')')) return Error("misses a closing parenthesis");
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      const char* begin = s_.c_str() + pos_;
      char* end = nullptr;
      double v = std::strtod(begin, &end);
      if (end == begin || !std::isfinite(v)) return Error("has a bad number");
      pos_ += static_cast<size_t>(end - begin);
      return MathValue(v);
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = pos_;
      while (pos_ < s_.size() &&
             (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) {
        ++pos_;
      }
      std::string word = s_.substr(start, pos_ - start);
      Skip();
      if (pos_ < s_.size() && s_[pos_] == '(') {
        ++pos_;
        return Function(word, depth + 1);
      }
      ids.push_back(word);
      if (series_ == nullptr) return MathValue(TimeSeries{});
      auto it = series_->find(word);
      if (it == series_->end()) return Error("names an unknown id \"" + word + "\"");
      return MathValue(it->second);
    }
    return Error("has an unexpected character '" + std::string(1, c) + "'");
  }

  Result<MathValue> Function(const std::string& name, int depth) {
    if (name != "SUM" && name != "AVG" && name != "MIN" && name != "MAX") {
      return Error("uses the function " + name +
                   ", which this server does not support (SUM, AVG, MIN, MAX and arithmetic)");
    }
    std::vector<MathValue> args;
    const bool bracket = Eat('[');
    if (!(bracket ? Eat(']') : Eat(')'))) {
      do {
        TY_ASSIGN_OR_RETURN(MathValue v, Expr(depth + 1));
        args.push_back(std::move(v));
      } while (Eat(','));
      if (bracket && !Eat(']')) return Error("misses a closing bracket");
    }
    if (bracket && !Eat(')')) return Error("misses a closing parenthesis");
    if (!bracket) {
      // Eat(')') above consumed the parenthesis of an empty call only.
      if (!args.empty() && !Eat(')')) return Error("misses a closing parenthesis");
    }
    if (args.empty()) return Error("calls " + name + " with nothing");
    auto fold = [&](const std::vector<double>& xs) {
      double acc = xs[0];
      for (size_t i = 1; i < xs.size(); ++i) {
        if (name == "SUM" || name == "AVG") acc += xs[i];
        if (name == "MIN") acc = std::min(acc, xs[i]);
        if (name == "MAX") acc = std::max(acc, xs[i]);
      }
      return name == "AVG" ? acc / static_cast<double>(xs.size()) : acc;
    };
    if (args.size() == 1) {
      // One series folds to one number.
      if (const double* d = std::get_if<double>(&args[0])) return MathValue(*d);
      std::vector<double> xs;
      for (const auto& [t, v] : std::get<TimeSeries>(args[0])) xs.push_back(v);
      if (xs.empty()) return MathValue(TimeSeries{});
      return MathValue(fold(xs));
    }
    std::set<int64_t> times;
    bool any_series = false;
    for (const auto& a : args) {
      if (const auto* ts = std::get_if<TimeSeries>(&a)) {
        any_series = true;
        for (const auto& [t, v] : *ts) times.insert(t);
      }
    }
    if (!any_series) {
      std::vector<double> xs;
      for (const auto& a : args) xs.push_back(std::get<double>(a));
      return MathValue(fold(xs));
    }
    TimeSeries out;
    for (int64_t t : times) {
      std::vector<double> xs;
      for (const auto& a : args) {
        if (const double* d = std::get_if<double>(&a)) {
          xs.push_back(*d);
        } else {
          const auto& ts = std::get<TimeSeries>(a);
          if (auto it = ts.find(t); it != ts.end()) xs.push_back(it->second);
        }
      }
      out[t] = fold(xs);
    }
    return MathValue(std::move(out));
  }

  const std::string& s_;
  const std::map<std::string, TimeSeries>* series_;
  size_t pos_ = 0;
};

}  // namespace

Result<std::vector<std::string>> ExpressionIds(const std::string& expression) {
  Parser p(expression, nullptr);
  TY_RETURN_IF_ERROR(p.Parse().status());
  return p.ids;
}

Result<MathValue> EvaluateExpression(const std::string& expression,
                                     const std::map<std::string, TimeSeries>& series) {
  Parser p(expression, &series);
  return p.Parse();
}

}  // namespace ty::services
