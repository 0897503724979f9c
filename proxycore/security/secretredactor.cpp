#include "secretredactor.h"

#include "keypool.h"
#include "secretmatcher.h"

#include <QRegularExpression>

namespace keyrelay {

SecretRedactor::SecretRedactor(const KeyPool *keys) : m_keys(keys) { }

void SecretRedactor::setExtraSecrets(const QStringList &secrets)
{
    QMutexLocker lock(&m_mutex);
    m_extraSecrets.clear();
    for (const QString &secret : secrets) {
        if (secret.trimmed().size() >= SecretMatcher::MinSecretLength)
            m_extraSecrets.append(secret.trimmed());
    }
    m_matcher.reset();
}

void SecretRedactor::setMorePools(const QList<const KeyPool *> &pools)
{
    QMutexLocker lock(&m_mutex);
    m_morePools = pools;
    m_matcher.reset();
}

std::shared_ptr<const SecretMatcher> SecretRedactor::matcher() const
{
    QList<const KeyPool *> pools;
    {
        QMutexLocker lock(&m_mutex);
        pools = m_morePools;
    }
    if (m_keys)
        pools.prepend(m_keys);
    QList<QStringList> keyLists;
    keyLists.reserve(pools.size());
    for (const KeyPool *pool : std::as_const(pools))
        keyLists.append(pool->secrets());
    QMutexLocker lock(&m_mutex);
    // A pool hands out the same shared list until its keys change: comparing the data pointers is
    // enough (the cached copy keeps the old list alive, so its address cannot be reused meanwhile).
    bool same = m_matcher && keyLists.size() == m_matcherKeys.size();
    for (qsizetype i = 0; same && i < keyLists.size(); ++i)
        same = keyLists.at(i).constData() == m_matcherKeys.at(i).constData()
            && keyLists.at(i).size() == m_matcherKeys.at(i).size();
    if (same)
        return m_matcher;
    QList<SecretMatcher::Secret> secrets;
    for (const QStringList &keys : std::as_const(keyLists)) {
        for (const QString &secret : keys)
            secrets.append({ secret.toUtf8(), KeyPool::mask(secret).toUtf8() });
    }
    for (const QString &secret : std::as_const(m_extraSecrets))
        secrets.append({ secret.toUtf8(), KeyPool::mask(secret).toUtf8() });
    m_matcherKeys = keyLists;
    m_matcher = std::make_shared<const SecretMatcher>(secrets);
    return m_matcher;
}

QString SecretRedactor::redact(const QString &text) const
{
    if (text.isEmpty())
        return text;
    const QByteArray utf8 = text.toUtf8();
    const QByteArray masked = matcher()->mask(utf8);
    return redactPatterns(masked == utf8 ? text : QString::fromUtf8(masked));
}

QByteArray SecretRedactor::maskConfiguredSecrets(const QByteArray &data) const
{
    return matcher()->mask(data);
}

bool SecretRedactor::maskHeaderValues(QList<QPair<QByteArray, QByteArray>> *headers) const
{
    const std::shared_ptr<const SecretMatcher> secrets = matcher();
    bool masked = false;
    for (auto &header : *headers) {
        if (secrets->contains(header.second)) {
            header.second = secrets->mask(header.second).replace("\xE2\x80\xA6", "...");
            masked = true;
        }
    }
    return masked;
}

bool SecretRedactor::containsConfiguredSecret(const QByteArray &data) const
{
    return matcher()->contains(data);
}

QString SecretRedactor::redactPatterns(const QString &text)
{
    // Header-style credentials: "Authorization: Bearer X", "api-key: X", "x-api-key=X", "Bearer X".
    static const QRegularExpression headerValue(
        QStringLiteral(R"((?i)\b((?:authorization|proxy-authorization)\s*[:=]\s*(?:bearer\s+|basic\s+)?|)"
                       R"((?:x-)?api[-_]?key\s*[:=]\s*|bearer\s+)(["']?)([^\s"',;&]{6,}))"));
    // Query/form values: key=..., api_key=..., apikey=..., access_token=..., token=...
    static const QRegularExpression queryValue(QStringLiteral(
        R"((?i)([?&;\s"'](?:key|api_key|apikey|api-key|access_token|token|secret)=)([^&\s"'#]{4,}))"));
    // Provider-shaped keys anywhere: OpenAI/Anthropic "sk-…", Google "AIza…", xAI "xai-…", Groq "gsk_…".
    static const QRegularExpression keyShape(
        QStringLiteral(R"(\b((?:sk|xai|gsk|pk|rk)[-_][A-Za-z0-9_\-]{12,}|AIza[A-Za-z0-9_\-]{20,}))"));

    QString out = text;
    const auto maskMatches = [&out](const QRegularExpression &pattern, int group) {
        QString result;
        qsizetype last = 0;
        auto it = pattern.globalMatch(out);
        bool any = false;
        while (it.hasNext()) {
            const QRegularExpressionMatch match = it.next();
            const QString value = match.captured(group);
            if (value.contains(QChar(0x2026)))
                continue; // already masked
            any = true;
            result += QStringView(out).mid(last, match.capturedStart(group) - last);
            result += KeyPool::mask(value);
            last = match.capturedEnd(group);
        }
        if (!any)
            return;
        result += QStringView(out).mid(last);
        out = result;
    };
    // Cheap tests first: most texts (paths, model names, labels) match none of the patterns.
    if (text.contains(QLatin1String("bearer"), Qt::CaseInsensitive)
        || text.contains(QLatin1String("authorization"), Qt::CaseInsensitive)
        || text.contains(QLatin1String("api"), Qt::CaseInsensitive)) {
        maskMatches(headerValue, 3);
    }
    if (out.contains(QLatin1Char('=')))
        maskMatches(queryValue, 2);
    if (out.contains(QLatin1String("k-")) || out.contains(QLatin1String("k_"))
        || out.contains(QLatin1String("xai")) || out.contains(QLatin1String("AIza"))) {
        maskMatches(keyShape, 1);
    }
    return out;
}

} // namespace keyrelay
