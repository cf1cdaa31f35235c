#include "storage/s3_xml.h"

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstring>
#include <memory>
#include <mutex>

#include "common/clock.h"

namespace ty::storage {
namespace {

struct XmlDocDeleter {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using XmlDocPtr = std::unique_ptr<xmlDoc, XmlDocDeleter>;

// libxml2 must be initialised once before threads use it.
void InitXml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

// Stops the parser and marks the document not well-formed (libxml2 2.9's xmlStopParser does not),
// so that xmlCtxtReadMemory frees the partial tree and returns none.
void Refuse(xmlParserCtxtPtr ctxt) {
  xmlStopParser(ctxt);
  ctxt->wellFormed = 0;
}

struct ParserCtxtDeleter {
  void operator()(xmlParserCtxt* c) const { xmlFreeParserCtxt(c); }
};

// S3 never sends a DOCTYPE. Refusing any at all leaves no entity but the five built-in ones, so
// nothing can expand (billion laughs) or be fetched (external entities), whatever libxml2's
// defaults are.
void RefuseDtd(void* ctx, const xmlChar* /*name*/, const xmlChar* /*external_id*/,
               const xmlChar* /*system_id*/) {
  Refuse(static_cast<xmlParserCtxtPtr>(ctx));
}

// Enforces kMaxS3XmlDepth while parsing: nameNr is the number of open ancestors, so the element
// about to open would be at depth nameNr + 1.
void StartElementBounded(void* ctx, const xmlChar* localname, const xmlChar* prefix,
                         const xmlChar* uri, int nb_namespaces, const xmlChar** namespaces,
                         int nb_attributes, int nb_defaulted, const xmlChar** attributes) {
  auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
  if (ctxt->nameNr >= kMaxS3XmlDepth) {
    Refuse(ctxt);
    return;
  }
  xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                        nb_defaulted, attributes);
}

XmlDocPtr Parse(std::string_view xml) {
  InitXml();
  if (xml.empty() || xml.size() > kMaxS3XmlBytes) return nullptr;
  std::unique_ptr<xmlParserCtxt, ParserCtxtDeleter> ctxt(xmlNewParserCtxt());
  if (ctxt == nullptr || ctxt->sax == nullptr) return nullptr;
  ctxt->sax->internalSubset = RefuseDtd;
  ctxt->sax->startElementNs = StartElementBounded;
  // NONET: never fetch anything a document names. Without XML_PARSE_HUGE libxml2 also keeps its
  // own limits on text node and name sizes.
  return XmlDocPtr(xmlCtxtReadMemory(ctxt.get(), xml.data(), static_cast<int>(xml.size()), "s3.xml",
                                     nullptr,
                                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
}

bool NameIs(const xmlNode* n, const char* name) {
  return n->type == XML_ELEMENT_NODE &&
         std::strcmp(reinterpret_cast<const char*>(n->name), name) == 0;
}

std::string Text(const xmlNode* n) {
  std::string out;
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content != nullptr) {
      out.append(reinterpret_cast<const char*>(c->content));
    }
  }
  return out;
}

const xmlNode* Child(const xmlNode* n, const char* name) {
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if (NameIs(c, name)) return c;
  }
  return nullptr;
}

std::string ChildText(const xmlNode* n, const char* name) {
  const xmlNode* c = Child(n, name);
  return c == nullptr ? std::string() : Text(c);
}

std::string Unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  // Some servers send &quot; entities that decode to the same thing; anything else stays.
  return s;
}

const xmlNode* Root(const XmlDocPtr& doc) {
  return doc == nullptr ? nullptr : xmlDocGetRootElement(doc.get());
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool ParseS3Error(std::string_view xml, S3ErrorBody* out) {
  XmlDocPtr doc = Parse(xml);
  const xmlNode* root = Root(doc);
  if (root == nullptr || !NameIs(root, "Error")) return false;
  out->code = ChildText(root, "Code");
  out->message = ChildText(root, "Message");
  out->region = ChildText(root, "Region");
  out->endpoint = ChildText(root, "Endpoint");
  return true;
}

Result<S3ListPage> ParseListObjectsV2(std::string_view xml) {
  XmlDocPtr doc = Parse(xml);
  const xmlNode* root = Root(doc);
  if (root == nullptr || !NameIs(root, "ListBucketResult")) {
    return IoError("S3 sent an unreadable ListObjectsV2 response");
  }
  const bool url_encoded = ChildText(root, "EncodingType") == "url";
  auto decode = [&](const std::string& s) { return url_encoded ? UrlDecode(s) : s; };
  S3ListPage page;
  for (const xmlNode* c = root->children; c != nullptr; c = c->next) {
    if (NameIs(c, "Contents")) {
      S3ListEntry e;
      e.key = decode(ChildText(c, "Key"));
      e.size = std::strtoull(ChildText(c, "Size").c_str(), nullptr, 10);
      e.etag = Unquote(ChildText(c, "ETag"));
      TimePoint t;
      if (ParseIso8601(ChildText(c, "LastModified"), &t)) e.last_modified = t;
      page.objects.push_back(std::move(e));
    } else if (NameIs(c, "CommonPrefixes")) {
      page.common_prefixes.push_back(decode(ChildText(c, "Prefix")));
    } else if (NameIs(c, "IsTruncated")) {
      page.truncated = Text(c) == "true";
    } else if (NameIs(c, "NextContinuationToken")) {
      page.next_continuation_token = Text(c);
    }
  }
  if (!page.truncated) page.next_continuation_token.clear();
  return page;
}

Result<std::string> ParseInitiateMultipartUpload(std::string_view xml) {
  XmlDocPtr doc = Parse(xml);
  const xmlNode* root = Root(doc);
  if (root == nullptr) return IoError("S3 sent an unreadable CreateMultipartUpload response");
  std::string id = ChildText(root, "UploadId");
  if (id.empty()) return IoError("S3's CreateMultipartUpload response has no UploadId");
  return id;
}

Result<std::string> ParseCompleteMultipartUpload(std::string_view xml) {
  XmlDocPtr doc = Parse(xml);
  const xmlNode* root = Root(doc);
  if (root == nullptr || !NameIs(root, "CompleteMultipartUploadResult")) {
    return IoError("S3 sent an unreadable CompleteMultipartUpload response");
  }
  return Unquote(ChildText(root, "ETag"));
}

Result<std::vector<S3DeleteError>> ParseDeleteResult(std::string_view xml) {
  std::vector<S3DeleteError> errors;
  XmlDocPtr doc = Parse(xml);
  const xmlNode* root = Root(doc);
  if (root == nullptr || !NameIs(root, "DeleteResult")) {
    return IoError("S3 sent an unreadable DeleteObjects response");
  }
  for (const xmlNode* c = root->children; c != nullptr; c = c->next) {
    if (!NameIs(c, "Error")) continue;
    errors.push_back({ChildText(c, "Key"), ChildText(c, "Code"), ChildText(c, "Message")});
  }
  return errors;
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    switch (c) {
      case '&':
        out.append("&amp;");
        break;
      case '<':
        out.append("&lt;");
        break;
      case '>':
        out.append("&gt;");
        break;
      case '"':
        out.append("&quot;");
        break;
      case '\'':
        out.append("&apos;");
        break;
      case '\t':
        out.append("&#9;");
        break;
      case '\n':
        out.append("&#10;");
        break;
      case '\r':
        out.append("&#13;");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

bool HasXmlForbiddenChar(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && u != '\t' && u != '\n' && u != '\r') return true;
  }
  return false;
}

std::string BuildDeleteRequest(const std::vector<std::string>& keys) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete><Quiet>true</Quiet>";
  for (const std::string& k : keys) {
    out.append("<Object><Key>").append(XmlEscape(k)).append("</Key></Object>");
  }
  out.append("</Delete>");
  return out;
}

std::string BuildCompleteMultipartUpload(const std::vector<S3CompletedPart>& parts) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload>";
  for (const S3CompletedPart& p : parts) {
    out.append("<Part><PartNumber>").append(std::to_string(p.part_number));
    out.append("</PartNumber><ETag>&quot;").append(XmlEscape(p.etag));
    out.append("&quot;</ETag></Part>");
  }
  out.append("</CompleteMultipartUpload>");
  return out;
}

std::string BuildCreateBucketConfiguration(const std::string& region) {
  return "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
         "<LocationConstraint>" +
         XmlEscape(region) + "</LocationConstraint></CreateBucketConfiguration>";
}

std::string UrlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace ty::storage
