#include "coretext.h"

#include <QRegularExpression>

#include <functional>

namespace keyrelay {

namespace {

struct Pattern
{
    QRegularExpression english;
    std::function<QString(const QRegularExpressionMatch &)> shown;
};

QRegularExpression exact(const char *pattern)
{
    return QRegularExpression(QLatin1Char('^') + QLatin1String(pattern) + QLatin1Char('$'));
}

} // namespace

QString CoreText::subject(const QString &english)
{
    static const QRegularExpression upstream = exact("the upstream (\\S+)");
    static const QRegularExpression httpProxy = exact("the HTTP proxy (\\S+)");
    static const QRegularExpression socksProxy = exact("the SOCKS5 proxy (\\S+)");
    if (const QRegularExpressionMatch m = upstream.match(english); m.hasMatch())
        return tr("the upstream %1").arg(m.captured(1));
    if (const QRegularExpressionMatch m = httpProxy.match(english); m.hasMatch())
        return tr("the HTTP proxy %1").arg(m.captured(1));
    if (const QRegularExpressionMatch m = socksProxy.match(english); m.hasMatch())
        return tr("the SOCKS5 proxy %1").arg(m.captured(1));
    if (english == QLatin1String("the network proxy"))
        return tr("the network proxy");
    return english;
}

QString CoreText::display(const QString &english)
{
    if (english.isEmpty())
        return english;
    // The texts of proxycore (proxyserver.cpp, proxyexchange.cpp, keypool.cpp, upstreamfailure.cpp) that
    // reach the log and the key table. Anchored: anything else, the upstream's words included, stays.
    static const QList<Pattern> patterns {
        { exact("the website (\\S+) may not use KeyRelay; allow it in KeyRelay's settings "
                "\\(security/allowedOrigins\\)"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 is not an allowed website (allow it here or under Settings › Security)")
                  .arg(m.captured(1));
          } },
        { exact("the request names more than one Origin; KeyRelay serves none of them"),
          [](const QRegularExpressionMatch &) {
              return tr("the request names more than one website (Origin); KeyRelay serves none of them");
          } },
        { exact("a request from another website \\(Sec-Fetch-Site: cross-site\\) without an Origin, such as "
                "an image or script tag; KeyRelay does not serve it"),
          [](const QRegularExpressionMatch &) {
              return tr("a request from another website without an Origin (such as an image or script "
                        "tag); KeyRelay does not serve it");
          } },
        { exact("Host \"(.*)\" is not this machine; KeyRelay only serves local clients \\(a reverse proxy's "
                "host name can be added to security/allowedHosts\\)"),
          [](const QRegularExpressionMatch &m) {
              return tr("host \"%1\" is not this computer; KeyRelay only serves local clients (a reverse "
                        "proxy's host name can be added under Settings › Security)")
                  .arg(m.captured(1));
          } },
        { exact("KeyRelay requires its client access token: send it as the API key \\(Authorization: "
                "Bearer <token>\\)"),
          [](const QRegularExpressionMatch &) {
              return tr("the client did not send KeyRelay's client access token as its API key");
          } },
        { exact("method not supported by KeyRelay"),
          [](const QRegularExpressionMatch &) {
              return tr("method not supported by KeyRelay");
          } },
        { exact("KeyRelay is shutting down"),
          [](const QRegularExpressionMatch &) {
              return tr("KeyRelay is shutting down");
          } },
        { exact("KeyRelay is serving its maximum of (\\d+) connections; retry shortly"),
          [](const QRegularExpressionMatch &m) {
              return tr("KeyRelay is serving its maximum of %1 connections; retry shortly")
                  .arg(m.captured(1));
          } },
        { exact("client closed the connection"),
          [](const QRegularExpressionMatch &) {
              return tr("the client closed the connection");
          } },
        { exact("response cut off: (.*)"),
          [](const QRegularExpressionMatch &m) {
              return tr("response cut off: %1").arg(CoreText::display(m.captured(1)));
          } },
        { exact("upstream idle for (\\d+) s"),
          [](const QRegularExpressionMatch &m) {
              return tr("nothing came from the upstream for %1 s").arg(m.captured(1));
          } },
        // Key states the pool writes itself.
        { exact("the upstream refused the key"),
          [](const QRegularExpressionMatch &) {
              return tr("the upstream refused the key");
          } },
        { exact("the key's quota is used up"),
          [](const QRegularExpressionMatch &) {
              return tr("the key's quota is used up");
          } },
        { exact("429 rate limited"),
          [](const QRegularExpressionMatch &) {
              return tr("429 rate limited");
          } },
        { exact("works again"),
          [](const QRegularExpressionMatch &) {
              return tr("works again");
          } },
        { exact("test: (.*)"), // written by the Keys page's Test into the pool
          [](const QRegularExpressionMatch &m) {
              return tr("test: %1").arg(CoreText::display(m.captured(1)));
          } },
        { exact("re-check: (.*)"),
          [](const QRegularExpressionMatch &m) {
              return tr("re-check: %1").arg(CoreText::display(m.captured(1)));
          } },
        // Where a request without an HTTP answer failed (upstreamfailure.cpp).
        { exact("(.+) refused the connection \\(is it running\\?\\)"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 refused the connection (is it running?)").arg(subject(m.captured(1)));
          } },
        { exact("(.+) refused the connection"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 refused the connection").arg(subject(m.captured(1)));
          } },
        { exact("(.+) was not found \\(its host name does not resolve\\)"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 was not found (its host name does not resolve)").arg(subject(m.captured(1)));
          } },
        { exact("(.+) closed the connection before (the upstream \\S+) answered"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 closed the connection before %2 answered")
                  .arg(subject(m.captured(1)), subject(m.captured(2)));
          } },
        { exact("(.+) closed the connection before answering"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 closed the connection before answering").arg(subject(m.captured(1)));
          } },
        { exact("(.+) did not answer in time"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 did not answer in time").arg(subject(m.captured(1)));
          } },
        { exact("(.+) refused the credentials \\(user \"(.*)\"\\)"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 refused the credentials (user \"%2\")")
                  .arg(subject(m.captured(1)), m.captured(2));
          } },
        { exact("(.+) asks for credentials and none are set \\(give them in the upstream proxy setting: "
                "http://user:password@host:port\\)"),
          [](const QRegularExpressionMatch &m) {
              return tr("%1 asks for credentials and none are set (give them in the upstream proxy "
                        "setting: http://user:password@host:port)")
                  .arg(subject(m.captured(1)));
          } },
        { exact("TLS with (the upstream \\S+) failed: (.*)"),
          [](const QRegularExpressionMatch &m) {
              return tr("TLS with %1 failed: %2").arg(subject(m.captured(1)), m.captured(2));
          } },
        { exact("could not connect to the upstream (\\S+) within (\\d+) s"),
          [](const QRegularExpressionMatch &m) {
              return tr("could not connect to the upstream %1 within %2 s").arg(m.captured(1), m.captured(2));
          } },
        { exact("the upstream sent nothing for (\\d+) s"),
          [](const QRegularExpressionMatch &m) {
              return tr("the upstream sent nothing for %1 s").arg(m.captured(1));
          } },
    };
    for (const Pattern &pattern : patterns) {
        const QRegularExpressionMatch match = pattern.english.match(english);
        if (match.hasMatch())
            return pattern.shown(match);
    }
    return english;
}

CoreText::FailureKind CoreText::failureKind(const QString &english)
{
    if (english.startsWith(QLatin1String("TLS with ")))
        return FailureKind::Tls;
    if (english.startsWith(QLatin1String("the HTTP proxy "))
        || english.startsWith(QLatin1String("the SOCKS5 proxy "))
        || english.startsWith(QLatin1String("the network proxy")))
        return FailureKind::NetworkProxy;
    if (english.startsWith(QLatin1String("the upstream "))
        || english.startsWith(QLatin1String("could not connect to the upstream")))
        return FailureKind::Upstream;
    return FailureKind::Unknown;
}

} // namespace keyrelay
