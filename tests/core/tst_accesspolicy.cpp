// AccessPolicy: which browser origins, tokens and Host headers may use the proxy.
#include "accesspolicy.h"

#include <QtTest>

using namespace keyrelay;

namespace {
HttpRequest requestWith(const HeaderList &headers)
{
    HttpRequest request;
    request.method = "POST";
    request.target = "/v1/chat/completions";
    request.headers = headers;
    return request;
}
} // namespace

class tst_AccessPolicy : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void originVerdicts_data();
    void originVerdicts();
    void requestVerdicts_data();
    void requestVerdicts();
    void allowAnyWebsite();
    void corsHeadersEchoTheOrigin();
    void preflightPrivateNetwork();
    void tokenNotRequiredWhenUnset();
    void tokenChannels_data();
    void tokenChannels();
    void constantTimeEquals();
    void hostCheck_data();
    void hostCheck();
    void entryValidation_data();
    void entryValidation();
    void generatedTokensDiffer();
};

void tst_AccessPolicy::originVerdicts_data()
{
    QTest::addColumn<QStringList>("allowList");
    QTest::addColumn<QByteArray>("origin");
    QTest::addColumn<int>("verdict");
    const int none = int(AccessPolicy::OriginVerdict::NoOrigin);
    const int allowed = int(AccessPolicy::OriginVerdict::Allowed);
    const int blocked = int(AccessPolicy::OriginVerdict::Blocked);
    const QStringList empty;
    const QStringList list { QStringLiteral("https://bettergpt.chat"),
                             QStringLiteral("https://*.example.org"),
                             QStringLiteral("http://192.168.1.5:3000") };
    QTest::newRow("no origin") << empty << QByteArray() << none;
    QTest::newRow("evil website") << empty << QByteArray("https://evil.example") << blocked;
    QTest::newRow("null is not allowed by default") << empty << QByteArray("null") << blocked;
    QTest::newRow("null when listed")
        << QStringList { QStringLiteral("null") } << QByteArray("null") << allowed;
    QTest::newRow("localhost any port") << empty << QByteArray("http://localhost:3000") << allowed;
    QTest::newRow("localhost https") << empty << QByteArray("https://localhost") << allowed;
    QTest::newRow("127.0.0.1") << empty << QByteArray("http://127.0.0.1:5173") << allowed;
    QTest::newRow("::1") << empty << QByteArray("http://[::1]:8080") << allowed;
    QTest::newRow("sub.localhost") << empty << QByteArray("http://app.localhost:3000") << allowed;
    QTest::newRow("localhost lookalike") << empty << QByteArray("http://localhost.evil.example") << blocked;
    QTest::newRow("127 lookalike") << empty << QByteArray("http://127.0.0.1.evil.example") << blocked;
    QTest::newRow("chrome extension")
        << empty << QByteArray("chrome-extension://abcdefghijklmnop") << allowed;
    QTest::newRow("moz extension") << empty << QByteArray("moz-extension://1234-5678") << allowed;
    QTest::newRow("safari extension") << empty << QByteArray("safari-web-extension://x") << allowed;
    QTest::newRow("app scheme") << empty << QByteArray("app://obsidian.md") << allowed;
    QTest::newRow("tauri") << empty << QByteArray("tauri://localhost") << allowed;
    QTest::newRow("vscode webview") << empty << QByteArray("vscode-webview://abc") << allowed;
    QTest::newRow("file is not trusted") << empty << QByteArray("file://") << blocked;
    QTest::newRow("listed exact") << list << QByteArray("https://bettergpt.chat") << allowed;
    QTest::newRow("listed exact, case") << list << QByteArray("https://BetterGPT.chat") << allowed;
    QTest::newRow("listed, other scheme") << list << QByteArray("http://bettergpt.chat") << blocked;
    QTest::newRow("listed, other port") << list << QByteArray("https://bettergpt.chat:8443") << blocked;
    QTest::newRow("listed, suffix trick") << list << QByteArray("https://evilbettergpt.chat") << blocked;
    QTest::newRow("listed, prefix trick")
        << list << QByteArray("https://bettergpt.chat.evil.example") << blocked;
    QTest::newRow("wildcard subdomain") << list << QByteArray("https://chat.example.org") << allowed;
    QTest::newRow("wildcard deep subdomain") << list << QByteArray("https://a.b.example.org") << allowed;
    QTest::newRow("wildcard not the apex") << list << QByteArray("https://example.org") << blocked;
    QTest::newRow("wildcard suffix trick") << list << QByteArray("https://evilexample.org") << blocked;
    QTest::newRow("wildcard other scheme") << list << QByteArray("http://chat.example.org") << blocked;
    QTest::newRow("listed LAN address") << list << QByteArray("http://192.168.1.5:3000") << allowed;
    QTest::newRow("garbage") << list << QByteArray("not an origin") << blocked;
    QTest::newRow("wildcard, backslash before the suffix")
        << list << QByteArray("https://evil\\.example.org") << blocked;
    QTest::newRow("wildcard, percent before the suffix")
        << list << QByteArray("https://evil%2e.example.org") << blocked;
    QTest::newRow("localhost with a backslash") << empty << QByteArray("http://evil\\.localhost") << blocked;
}

void tst_AccessPolicy::originVerdicts()
{
    QFETCH(QStringList, allowList);
    QFETCH(QByteArray, origin);
    QFETCH(int, verdict);
    ProxyConfig config;
    config.allowedOrigins = allowList;
    const AccessPolicy policy(config);
    QCOMPARE(int(policy.checkOrigin(origin)), verdict);
}

void tst_AccessPolicy::requestVerdicts_data()
{
    QTest::addColumn<HeaderList>("headers");
    QTest::addColumn<int>("verdict");
    const int none = int(AccessPolicy::OriginVerdict::NoOrigin);
    const int allowed = int(AccessPolicy::OriginVerdict::Allowed);
    const int blocked = int(AccessPolicy::OriginVerdict::Blocked);
    const int ambiguous = int(AccessPolicy::OriginVerdict::Ambiguous);
    const int crossSite = int(AccessPolicy::OriginVerdict::CrossSiteWithoutOrigin);
    QTest::newRow("nothing (SDKs, curl)") << HeaderList {} << none;
    QTest::newRow("allowed origin") << HeaderList { { "Origin", "https://bettergpt.chat" } } << allowed;
    QTest::newRow("two origins, allowed first")
        << HeaderList { { "Origin", "https://bettergpt.chat" }, { "Origin", "https://evil.example" } }
        << ambiguous;
    QTest::newRow("two origins, both allowed")
        << HeaderList { { "Origin", "http://localhost:3000" }, { "origin", "http://localhost:3000" } }
        << ambiguous;
    QTest::newRow("img tag from another website")
        << HeaderList { { "Sec-Fetch-Site", "cross-site" }, { "Sec-Fetch-Mode", "no-cors" } } << crossSite;
    QTest::newRow("cross-site, any case") << HeaderList { { "sec-fetch-site", " Cross-Site " } } << crossSite;
    QTest::newRow("cross-site from an allowed origin")
        << HeaderList { { "Origin", "https://bettergpt.chat" }, { "Sec-Fetch-Site", "cross-site" } }
        << allowed;
    QTest::newRow("cross-site from another origin")
        << HeaderList { { "Origin", "https://evil.example" }, { "Sec-Fetch-Site", "cross-site" } } << blocked;
    QTest::newRow("same-origin") << HeaderList { { "Sec-Fetch-Site", "same-origin" } } << none;
    QTest::newRow("same-site") << HeaderList { { "Sec-Fetch-Site", "same-site" } } << none;
    QTest::newRow("typed address (none)") << HeaderList { { "Sec-Fetch-Site", "none" } } << none;
}

void tst_AccessPolicy::requestVerdicts()
{
    QFETCH(HeaderList, headers);
    QFETCH(int, verdict);
    ProxyConfig config;
    config.allowedOrigins = QStringList { QStringLiteral("https://bettergpt.chat") };
    HttpRequest request;
    request.method = "GET";
    request.target = "/v1/models";
    request.headers = headers;
    QCOMPARE(int(AccessPolicy(config).checkRequest(request)), verdict);
    // "Allow any website" lets every origin and cross-site request in, but never two Origins.
    config.allowAnyWebsite = true;
    const int anyWebsite = verdict == int(AccessPolicy::OriginVerdict::Ambiguous)
        ? verdict
        : (verdict == int(AccessPolicy::OriginVerdict::NoOrigin)
                   || verdict == int(AccessPolicy::OriginVerdict::CrossSiteWithoutOrigin)
               ? int(AccessPolicy::OriginVerdict::NoOrigin)
               : int(AccessPolicy::OriginVerdict::Allowed));
    QCOMPARE(int(AccessPolicy(config).checkRequest(request)), anyWebsite);
}

void tst_AccessPolicy::allowAnyWebsite()
{
    ProxyConfig config;
    QCOMPARE(AccessPolicy(config).checkOrigin("https://evil.example"), AccessPolicy::OriginVerdict::Blocked);
    config.allowAnyWebsite = true;
    const AccessPolicy policy(config);
    QCOMPARE(policy.checkOrigin("https://evil.example"), AccessPolicy::OriginVerdict::Allowed);
    QCOMPARE(policy.checkOrigin(""), AccessPolicy::OriginVerdict::NoOrigin);
}

void tst_AccessPolicy::corsHeadersEchoTheOrigin()
{
    QVERIFY(AccessPolicy::responseCorsHeaders(QByteArray()).isEmpty());
    const HeaderList headers = AccessPolicy::responseCorsHeaders("https://bettergpt.chat");
    QCOMPARE(headerValue(headers, "Access-Control-Allow-Origin"), QByteArray("https://bettergpt.chat"));
    QCOMPARE(headerValue(headers, "Vary"), QByteArray("Origin"));
    QVERIFY(headerValue(headers, "Access-Control-Expose-Headers").contains("x-ratelimit-remaining-requests"));
}

void tst_AccessPolicy::preflightPrivateNetwork()
{
    HttpRequest request = requestWith({ { "Origin", "http://localhost:3000" } });
    request.method = "OPTIONS";
    HeaderList headers = AccessPolicy::preflightHeaders(request);
    QCOMPARE(headerValue(headers, "Access-Control-Allow-Origin"), QByteArray("http://localhost:3000"));
    QVERIFY(headerValue(headers, "Access-Control-Allow-Private-Network").isEmpty());
    QVERIFY(headerValue(headers, "Access-Control-Allow-Headers").contains("authorization"));
    request.headers += HeaderList { { "Access-Control-Request-Private-Network", "true" } };
    headers = AccessPolicy::preflightHeaders(request);
    QCOMPARE(headerValue(headers, "Access-Control-Allow-Private-Network"), QByteArray("true"));
}

void tst_AccessPolicy::tokenNotRequiredWhenUnset()
{
    const AccessPolicy policy { ProxyConfig() };
    QVERIFY(!policy.requiresToken());
    QVERIFY(policy.tokenAccepted(requestWith({})));
    QVERIFY(policy.tokenAccepted(requestWith({ { "Authorization", "Bearer anything" } })));
    QVERIFY(!policy.isToken("anything"));
}

void tst_AccessPolicy::tokenChannels_data()
{
    QTest::addColumn<HeaderList>("headers");
    QTest::addColumn<bool>("accepted");
    const QByteArray token = "krt-secret-token-0123456789";
    QTest::newRow("none") << HeaderList {} << false;
    QTest::newRow("bearer") << HeaderList { { "Authorization", "Bearer " + token } } << true;
    QTest::newRow("bearer lower case") << HeaderList { { "authorization", "bearer " + token } } << true;
    QTest::newRow("x-api-key") << HeaderList { { "x-api-key", token } } << true;
    QTest::newRow("api-key") << HeaderList { { "api-key", " " + token + " " } } << true;
    QTest::newRow("wrong") << HeaderList { { "Authorization", "Bearer krt-secret-token-0123456788" } }
                           << false;
    QTest::newRow("prefix only") << HeaderList { { "Authorization", "Bearer krt-secret-token" } } << false;
    QTest::newRow("longer") << HeaderList { { "Authorization", "Bearer " + token + "x" } } << false;
    QTest::newRow("without Bearer") << HeaderList { { "Authorization", token } } << false;
    QTest::newRow("one of two headers")
        << HeaderList { { "Authorization", "Bearer sk-client" }, { "x-api-key", token } } << true;
}

void tst_AccessPolicy::tokenChannels()
{
    QFETCH(HeaderList, headers);
    QFETCH(bool, accepted);
    ProxyConfig config;
    config.clientToken = QStringLiteral("krt-secret-token-0123456789");
    const AccessPolicy policy(config);
    QVERIFY(policy.requiresToken());
    QCOMPARE(policy.tokenAccepted(requestWith(headers)), accepted);
}

void tst_AccessPolicy::constantTimeEquals()
{
    QVERIFY(AccessPolicy::constantTimeEquals("abc", "abc"));
    QVERIFY(!AccessPolicy::constantTimeEquals("abd", "abc"));
    QVERIFY(!AccessPolicy::constantTimeEquals("ab", "abc"));
    QVERIFY(!AccessPolicy::constantTimeEquals("abcd", "abc"));
    QVERIFY(!AccessPolicy::constantTimeEquals("", "abc"));
    QVERIFY(AccessPolicy::constantTimeEquals("", ""));
}

void tst_AccessPolicy::hostCheck_data()
{
    QTest::addColumn<QByteArray>("host");
    QTest::addColumn<bool>("remoteListener");
    QTest::addColumn<bool>("allowed");
    QTest::newRow("empty") << QByteArray() << false << true;
    QTest::newRow("127.0.0.1:9000") << QByteArray("127.0.0.1:9000") << false << true;
    QTest::newRow("localhost") << QByteArray("localhost:9000") << false << true;
    QTest::newRow("[::1]") << QByteArray("[::1]:9000") << false << true;
    QTest::newRow("rebinding name") << QByteArray("evil.example:9000") << false << false;
    QTest::newRow("listed host") << QByteArray("api.example.test") << false << true;
    QTest::newRow("listed host with port, case") << QByteArray("API.Example.Test:443") << false << true;
    QTest::newRow("listed host's sibling") << QByteArray("www.example.test") << false << false;
    QTest::newRow("remote listener") << QByteArray("evil.example") << true << true;
    QTest::newRow("[::1] with a tail") << QByteArray("[::1]evil.example") << false << false;
    QTest::newRow("[::1] with a tail after the port") << QByteArray("[::1]:9000x") << false << false;
}

void tst_AccessPolicy::hostCheck()
{
    QFETCH(QByteArray, host);
    QFETCH(bool, remoteListener);
    QFETCH(bool, allowed);
    ProxyConfig config;
    config.allowedHosts = { QStringLiteral("api.example.test") };
    QCOMPARE(AccessPolicy(config).hostAllowed(host, remoteListener), allowed);
}

void tst_AccessPolicy::entryValidation_data()
{
    QTest::addColumn<QString>("entry");
    QTest::addColumn<bool>("origin");
    QTest::addColumn<bool>("host");
    QTest::newRow("https origin") << QStringLiteral("https://bettergpt.chat") << true << false;
    QTest::newRow("wildcard") << QStringLiteral("https://*.example.org") << true << false;
    QTest::newRow("with port") << QStringLiteral("http://localhost:3000") << true << false;
    QTest::newRow("null") << QStringLiteral("null") << true << true; // a legal (if odd) host name
    QTest::newRow("path") << QStringLiteral("https://a.example/x") << false << false;
    QTest::newRow("no scheme") << QStringLiteral("a.example") << false << true;
    QTest::newRow("host with port") << QStringLiteral("a.example:8443") << false << true;
    QTest::newRow("ip") << QStringLiteral("10.0.0.5") << false << true;
    QTest::newRow("spaces") << QStringLiteral("a b") << false << false;
    QTest::newRow("CRLF") << QStringLiteral("https://a\r\nSet-Cookie: x") << false << false;
}

void tst_AccessPolicy::entryValidation()
{
    QFETCH(QString, entry);
    QFETCH(bool, origin);
    QFETCH(bool, host);
    QCOMPARE(AccessPolicy::isValidOriginEntry(entry), origin);
    QCOMPARE(AccessPolicy::isValidHostEntry(entry), host);
}

void tst_AccessPolicy::generatedTokensDiffer()
{
    const QString a = AccessPolicy::generateToken();
    const QString b = AccessPolicy::generateToken();
    QVERIFY(a != b);
    QVERIFY(a.startsWith(QLatin1String("krt-")));
    QVERIFY(a.size() >= 40);
    for (const QChar c : a)
        QVERIFY(c.isLetterOrNumber() || c == QLatin1Char('-') || c == QLatin1Char('_'));
}

QTEST_GUILESS_MAIN(tst_AccessPolicy)
#include "tst_accesspolicy.moc"
