#include "messagerewriter.h"

#include "logging.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QList>

namespace keyrelay {

namespace {

struct Span
{
    qsizetype begin = 0;
    qsizetype end = 0; // one past the last byte
};

bool isJsonSpace(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A tiny scanner over text that QJsonDocument has already accepted as valid JSON, so it only needs
// to find where values begin and end, not to diagnose errors.
class JsonScanner
{
public:
    explicit JsonScanner(const QByteArray &text) : m_text(text) { }

    void skipSpace(qsizetype &pos) const
    {
        while (pos < m_text.size() && isJsonSpace(m_text.at(pos)))
            ++pos;
    }

    // pos at the opening quote; returns the position after the closing quote.
    bool skipString(qsizetype &pos) const
    {
        ++pos;
        while (pos < m_text.size()) {
            const char c = m_text.at(pos);
            if (c == '\\') {
                pos += 2;
                continue;
            }
            ++pos;
            if (c == '"')
                return true;
        }
        return false;
    }

    bool skipValue(qsizetype &pos) const
    {
        if (pos >= m_text.size())
            return false;
        const char first = m_text.at(pos);
        if (first == '"')
            return skipString(pos);
        if (first == '{' || first == '[') {
            int depth = 0;
            while (pos < m_text.size()) {
                const char c = m_text.at(pos);
                if (c == '"') {
                    if (!skipString(pos))
                        return false;
                    continue;
                }
                ++pos;
                if (c == '{' || c == '[') {
                    ++depth;
                } else if (c == '}' || c == ']') {
                    if (--depth == 0)
                        return true;
                }
            }
            return false;
        }
        while (pos < m_text.size()) {
            const char c = m_text.at(pos);
            if (c == ',' || c == ']' || c == '}' || isJsonSpace(c))
                break;
            ++pos;
        }
        return true;
    }

    // Finds the value of a top-level member whose raw key is @p key. Returns false if absent.
    bool findMember(const QByteArray &key, Span *value) const
    {
        qsizetype pos = 0;
        skipSpace(pos);
        if (pos >= m_text.size() || m_text.at(pos) != '{')
            return false;
        ++pos;
        bool found = false;
        while (true) {
            skipSpace(pos);
            if (pos >= m_text.size() || m_text.at(pos) == '}')
                return found;
            const qsizetype keyBegin = pos;
            if (!skipString(pos))
                return false;
            const QByteArray rawKey = m_text.mid(keyBegin, pos - keyBegin); // with its quotes
            // Compare the key as QJsonDocument reads it: "messag\u0065s" is "messages" too.
            const bool matches = rawKey.contains('\\')
                ? QJsonDocument::fromJson("[" + rawKey + "]").array().at(0).toString().toUtf8() == key
                : rawKey.mid(1, rawKey.size() - 2) == key;
            skipSpace(pos);
            if (pos >= m_text.size() || m_text.at(pos) != ':')
                return false;
            ++pos;
            skipSpace(pos);
            const qsizetype valueBegin = pos;
            if (!skipValue(pos))
                return false;
            if (matches) { // a duplicate key: like QJsonDocument, the last one wins
                *value = { valueBegin, pos };
                found = true;
            }
            skipSpace(pos);
            if (pos < m_text.size() && m_text.at(pos) == ',')
                ++pos;
        }
    }

    // The elements of the array that starts at @p array.begin.
    bool elements(const Span &array, QList<Span> *result) const
    {
        qsizetype pos = array.begin;
        if (m_text.at(pos) != '[')
            return false;
        ++pos;
        while (true) {
            skipSpace(pos);
            if (pos >= array.end)
                return false;
            if (m_text.at(pos) == ']')
                return true;
            const qsizetype begin = pos;
            if (!skipValue(pos))
                return false;
            result->append({ begin, pos });
            skipSpace(pos);
            if (pos < array.end && m_text.at(pos) == ',')
                ++pos;
        }
    }

private:
    const QByteArray &m_text;
};

} // namespace

bool MessageRewriter::appliesTo(const QByteArray &method, const QString &path)
{
    if (method != "POST")
        return false;
    QString pathOnly = path.section(QLatin1Char('?'), 0, 0);
    while (pathOnly.endsWith(QLatin1Char('/')))
        pathOnly.chop(1);
    return pathOnly.endsWith(QLatin1String("/chat/completions"));
}

QString MessageRewriter::modelOf(const QByteArray &body)
{
    const QJsonDocument document = QJsonDocument::fromJson(body);
    return document.isObject() ? document.object().value(QLatin1String("model")).toString() : QString();
}

bool MessageRewriter::replaceModel(QByteArray *body, const QString &model)
{
    const QJsonDocument document = QJsonDocument::fromJson(*body);
    if (!document.isObject() || !document.object().value(QLatin1String("model")).isString())
        return false;
    Span span;
    if (!JsonScanner(*body).findMember("model", &span) || span.begin >= span.end
        || body->at(span.begin) != '"')
        return false;
    // The new value as JSON encodes it: a one-element array's element, without the brackets.
    QByteArray encoded = QJsonDocument(QJsonArray { model }).toJson(QJsonDocument::Compact);
    encoded = encoded.mid(1, encoded.size() - 2);
    body->replace(span.begin, span.end - span.begin, encoded);
    return true;
}

namespace {

/// The reorder rule on an accepted document; @p out gets the new body. False when it does not apply.
bool reorderMessages(const QByteArray &body, const QJsonObject &root, const RewriteOptions &options,
                     QByteArray *out)
{
    // Qt 6.4 drops a raw U+FEFF at the start of JSON strings, so what QJsonDocument says about roles
    // (and any re-serialised body) would differ from the bytes: leave such bodies alone.
    if (body.contains("\xEF\xBB\xBF"))
        return false;
    const QJsonValue messagesValue = root.value(QLatin1String("messages"));
    if (!messagesValue.isArray())
        return false;
    const QJsonArray messages = messagesValue.toArray();
    const qsizetype count = messages.size();
    if (options.depth < 1 || count <= options.threshold || count - 1 <= options.depth)
        return false;
    const QJsonValue first = messages.at(0);
    if (!first.isObject()
        || first.toObject()
                .value(QLatin1String("role"))
                .toString()
                .compare(QLatin1String("system"), Qt::CaseInsensitive)
            != 0) {
        return false;
    }

    // The new order: everything before the last `depth` messages, the system message, then those.
    const qsizetype movedTo = count - options.depth; // index of the first message that stays after S
    QList<qsizetype> order;
    order.reserve(count);
    for (qsizetype i = 1; i < movedTo; ++i)
        order.append(i);
    order.append(0);
    for (qsizetype i = movedTo; i < count; ++i)
        order.append(i);

    const JsonScanner scanner(body);
    Span array;
    QList<Span> elements;
    if (scanner.findMember("messages", &array) && scanner.elements(array, &elements)
        && elements.size() == count) {
        out->clear();
        out->reserve(body.size());
        out->append(body.constData(), elements.first().begin);
        for (qsizetype slot = 0; slot < count; ++slot) {
            const Span &source = elements.at(order.at(slot));
            out->append(body.constData() + source.begin, source.end - source.begin);
            // keep the original separator that followed this slot
            const qsizetype gapBegin = elements.at(slot).end;
            const qsizetype gapEnd = slot + 1 < count ? elements.at(slot + 1).begin : elements.last().end;
            out->append(body.constData() + gapBegin, gapEnd - gapBegin);
        }
        out->append(body.constData() + elements.last().end, body.size() - elements.last().end);
    } else {
        // Unusual spelling (e.g. an escaped key): fall back to re-serialising the document.
        qCDebug(lcRewrite) << "byte-level rewrite not possible, re-serialising the body";
        QJsonArray reordered;
        for (const qsizetype index : std::as_const(order))
            reordered.append(messages.at(index));
        QJsonObject copy = root;
        copy.insert(QLatin1String("messages"), reordered);
        *out = QJsonDocument(copy).toJson(QJsonDocument::Compact);
    }
    qCDebug(lcRewrite) << "moved the system message of" << count << "messages to index" << (movedTo - 1);
    return true;
}

/// requestStreamUsage() on an accepted document whose members are @p root.
bool addStreamUsage(const QJsonObject &root, QByteArray *body)
{
    const QJsonValue stream = root.value(QLatin1String("stream"));
    if (!stream.isBool() || !stream.toBool())
        return false;
    const QJsonValue options = root.value(QLatin1String("stream_options"));
    if (options.isObject() && options.toObject().value(QLatin1String("include_usage")).toBool())
        return false; // the client asked for usage itself
    const JsonScanner scanner(*body);
    if (!options.isUndefined()) {
        Span span;
        if (!scanner.findMember("stream_options", &span))
            return false;
        if (!options.isObject()) { // e.g. null
            body->replace(span.begin, span.end - span.begin, "{\"include_usage\":true}");
            return true;
        }
        const QByteArray inner = body->mid(span.begin, span.end - span.begin);
        const JsonScanner innerScanner(inner);
        Span member;
        if (innerScanner.findMember("include_usage", &member)) { // false, null, 0...
            body->replace(span.begin + member.begin, member.end - member.begin, "true");
            return true;
        }
        qsizetype pos = 1;
        innerScanner.skipSpace(pos);
        const bool empty = pos < inner.size() && inner.at(pos) == '}';
        body->insert(span.begin + 1, empty ? "\"include_usage\":true" : "\"include_usage\":true,");
        return true;
    }
    qsizetype last = body->size() - 1;
    while (last >= 0 && isJsonSpace(body->at(last)))
        --last;
    if (last < 0 || body->at(last) != '}')
        return false;
    body->insert(last, ",\"stream_options\":{\"include_usage\":true}");
    return true;
}

} // namespace

bool MessageRewriter::requestStreamUsage(QByteArray *body)
{
    const QJsonDocument document = QJsonDocument::fromJson(*body);
    return document.isObject() && addStreamUsage(document.object(), body);
}

MessageRewriter::Result MessageRewriter::rewrite(const QByteArray &body, const RewriteOptions &options)
{
    Result result;
    QJsonParseError parseError {};
    const QJsonDocument document = QJsonDocument::fromJson(body, &parseError);
    if (parseError.error != QJsonParseError::NoError) {
        result.outcome = Outcome::InvalidJson;
        result.error = QStringLiteral("request body is not valid JSON: %1 at offset %2")
                           .arg(parseError.errorString())
                           .arg(parseError.offset);
        return result;
    }
    if (!document.isObject())
        return result;
    const QJsonObject root = document.object();
    result.model = root.value(QLatin1String("model")).toString();
    if (options.enabled)
        result.reordered = reorderMessages(body, root, options, &result.body);
    if (options.requestStreamUsage) {
        QByteArray withUsage = result.reordered ? result.body : body;
        if (addStreamUsage(root, &withUsage)) {
            result.body = withUsage;
            result.usageRequested = true;
        }
    }
    if (result.reordered || result.usageRequested)
        result.outcome = Outcome::Rewritten;
    else
        result.body.clear();
    return result;
}

} // namespace keyrelay
