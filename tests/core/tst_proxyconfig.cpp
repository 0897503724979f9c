// Unit tests of ProxyConfig: parsing of the listen address, upstream and upstream proxy, validation.
#include "proxyconfig.h"

#include <QtTest>

using keyrelay::ProxyConfig;

class tst_ProxyConfig : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void parseListen_data();
    void parseListen();
    void parseUpstream_data();
    void parseUpstream();
    void parseUpstreamProxy_data();
    void parseUpstreamProxy();
    void validateDefaults();
    void validateListenAddress_data();
    void validateListenAddress();
    void remoteListeningNeedsToken();
    void validateRanges();
    void listenAddresses();
    void normalizePathPrefixes_data();
    void normalizePathPrefixes();
    void endpointUrl_data();
    void endpointUrl();
    void endpointUrlOfAnyIPv6();
};

void tst_ProxyConfig::parseListen_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<QString>("host");
    QTest::addColumn<int>("port");

    QTest::newRow("ipv4:port") << QStringLiteral("127.0.0.1:9000") << true << QStringLiteral("127.0.0.1")
                               << 9000;
    QTest::newRow("localhost:port") << QStringLiteral("localhost:1234") << true << QStringLiteral("localhost")
                                    << 1234;
    QTest::newRow("LOCALHOST:port") << QStringLiteral("LOCALHOST:80") << true << QStringLiteral("LOCALHOST")
                                    << 80;
    QTest::newRow("[v6]:port") << QStringLiteral("[::1]:8080") << true << QStringLiteral("::1") << 8080;
    QTest::newRow("port only") << QStringLiteral("9000") << true << QStringLiteral("127.0.0.1") << 9000;
    QTest::newRow("port only 0") << QStringLiteral("0") << true << QStringLiteral("127.0.0.1") << 0;
    QTest::newRow("port only 65535") << QStringLiteral("65535") << true << QStringLiteral("127.0.0.1")
                                     << 65535;
    QTest::newRow("any:1") << QStringLiteral("0.0.0.0:1") << true << QStringLiteral("0.0.0.0") << 1;
    QTest::newRow("host only") << QStringLiteral("127.0.0.1") << true << QStringLiteral("127.0.0.1") << 9000;
    QTest::newRow("localhost only") << QStringLiteral("localhost") << true << QStringLiteral("localhost")
                                    << 9000;
    QTest::newRow("bare v6") << QStringLiteral("::1") << true << QStringLiteral("::1") << 9000;
    QTest::newRow("bracketed v6 only") << QStringLiteral("[::1]") << true << QStringLiteral("::1") << 9000;
    QTest::newRow("full v6 with port")
        << QStringLiteral("[2001:db8::1]:443") << true << QStringLiteral("2001:db8::1") << 443;
    QTest::newRow("surrounding spaces")
        << QStringLiteral("  192.168.0.2:8000 ") << true << QStringLiteral("192.168.0.2") << 8000;

    QTest::newRow("bad: host:99999") << QStringLiteral("host:99999") << false << QString() << 0;
    QTest::newRow("bad: port 99999") << QStringLiteral("127.0.0.1:99999") << false << QString() << 0;
    QTest::newRow("bad: port 65536") << QStringLiteral("127.0.0.1:65536") << false << QString() << 0;
    QTest::newRow("bad: port only 99999") << QStringLiteral("99999") << false << QString() << 0;
    QTest::newRow("bad: port text") << QStringLiteral("127.0.0.1:http") << false << QString() << 0;
    QTest::newRow("bad: negative port") << QStringLiteral("127.0.0.1:-1") << false << QString() << 0;
    QTest::newRow("bad: [::1") << QStringLiteral("[::1") << false << QString() << 0;
    QTest::newRow("bad: [::1]8080") << QStringLiteral("[::1]8080") << false << QString() << 0;
    QTest::newRow("bad: [::1]:x") << QStringLiteral("[::1]:x") << false << QString() << 0;
    QTest::newRow("bad: nothost:1") << QStringLiteral("nothost:1") << false << QString() << 0;
    QTest::newRow("bad: host name") << QStringLiteral("example.com") << false << QString() << 0;
    QTest::newRow("bad: two colons") << QStringLiteral("1.2.3.4:80:90") << false << QString() << 0;
    QTest::newRow("bad: port with junk") << QStringLiteral("9000abc") << false << QString() << 0;
    QTest::newRow("bad: [nothost]:80") << QStringLiteral("[nothost]:80") << false << QString() << 0;
}

void tst_ProxyConfig::parseListen()
{
    QFETCH(QString, text);
    QFETCH(bool, ok);
    QFETCH(QString, host);
    QFETCH(int, port);

    QString gotHost = QStringLiteral("unchanged");
    quint16 gotPort = 4242;
    QString error;
    QCOMPARE(ProxyConfig::parseListen(text, &gotHost, &gotPort, &error), ok);
    if (ok) {
        QCOMPARE(gotHost, host);
        QCOMPARE(int(gotPort), port);
        QVERIFY(error.isEmpty());
    } else {
        QVERIFY(!error.isEmpty());
        QVERIFY2(error.contains(text), qPrintable(error));
        // Nothing is half-written on failure.
        QCOMPARE(gotHost, QStringLiteral("unchanged"));
        QCOMPARE(int(gotPort), 4242);
    }
}

void tst_ProxyConfig::parseUpstream_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<QString>("url");

    QTest::newRow("https") << QStringLiteral("https://api.openai.com") << true
                           << QStringLiteral("https://api.openai.com");
    QTest::newRow("http with port") << QStringLiteral("http://localhost:8080") << true
                                    << QStringLiteral("http://localhost:8080");
    QTest::newRow("with path") << QStringLiteral("https://example.com/openai/v1") << true
                               << QStringLiteral("https://example.com/openai/v1");
    QTest::newRow("trailing slash removed")
        << QStringLiteral("https://example.com/v1/") << true << QStringLiteral("https://example.com/v1");
    QTest::newRow("trailing slashes removed")
        << QStringLiteral("https://example.com/v1///") << true << QStringLiteral("https://example.com/v1");
    QTest::newRow("root slash removed")
        << QStringLiteral("https://example.com/") << true << QStringLiteral("https://example.com");
    QTest::newRow("surrounding spaces")
        << QStringLiteral("  https://example.com  ") << true << QStringLiteral("https://example.com");
    QTest::newRow("upper-case scheme and host")
        << QStringLiteral("HTTPS://Example.COM/V1") << true << QStringLiteral("https://example.com/V1");
    QTest::newRow("ipv6 host") << QStringLiteral("http://[::1]:8000/v1") << true
                               << QStringLiteral("http://[::1]:8000/v1");

    QTest::newRow("bad: ftp") << QStringLiteral("ftp://x") << false << QString();
    QTest::newRow("bad: file") << QStringLiteral("file:///etc/passwd") << false << QString();
    QTest::newRow("bad: no scheme") << QStringLiteral("api.openai.com") << false << QString();
    QTest::newRow("bad: no host") << QStringLiteral("https://") << false << QString();
    QTest::newRow("bad: no host, path") << QStringLiteral("https:///v1") << false << QString();
    QTest::newRow("bad: query") << QStringLiteral("https://example.com/v1?api-version=1") << false
                                << QString();
    QTest::newRow("bad: empty query") << QStringLiteral("https://example.com/v1?") << false << QString();
    QTest::newRow("bad: fragment") << QStringLiteral("https://example.com/#top") << false << QString();
    QTest::newRow("bad: credentials")
        << QStringLiteral("https://user:secret@example.com") << false << QString();
    QTest::newRow("bad: user only") << QStringLiteral("https://user@example.com") << false << QString();
    QTest::newRow("bad: port out of range")
        << QStringLiteral("https://example.com:99999") << false << QString();
    QTest::newRow("bad: empty") << QString() << false << QString();
    QTest::newRow("bad: spaces in host") << QStringLiteral("https://exa mple.com") << false << QString();
}

void tst_ProxyConfig::parseUpstream()
{
    QFETCH(QString, text);
    QFETCH(bool, ok);
    QFETCH(QString, url);

    const QUrl sentinel(QStringLiteral("http://sentinel.invalid"));
    QUrl got = sentinel;
    QString error;
    QCOMPARE(ProxyConfig::parseUpstream(text, &got, &error), ok);
    if (ok) {
        QCOMPARE(got.toString(), url);
        QVERIFY(got.isValid());
        QVERIFY(!got.path().endsWith(QLatin1Char('/')));
    } else {
        QVERIFY(!error.isEmpty());
        QCOMPARE(got, sentinel);
    }
}

void tst_ProxyConfig::parseUpstreamProxy_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<bool>("useSystem");
    QTest::addColumn<int>("type");
    QTest::addColumn<QString>("host");
    QTest::addColumn<int>("port");
    QTest::addColumn<QString>("user");
    QTest::addColumn<QString>("password");

    const int none = QNetworkProxy::NoProxy;
    QTest::newRow("empty") << QString() << true << false << none << QString() << 0 << QString() << QString();
    QTest::newRow("blank") << QStringLiteral("   ") << true << false << none << QString() << 0 << QString()
                           << QString();
    QTest::newRow("none") << QStringLiteral("none") << true << false << none << QString() << 0 << QString()
                          << QString();
    QTest::newRow("None") << QStringLiteral(" None ") << true << false << none << QString() << 0 << QString()
                          << QString();
    QTest::newRow("system") << QStringLiteral("system") << true << true << int(QNetworkProxy::DefaultProxy)
                            << QString() << 0 << QString() << QString();
    QTest::newRow("SYSTEM") << QStringLiteral("SYSTEM") << true << true << int(QNetworkProxy::DefaultProxy)
                            << QString() << 0 << QString() << QString();
    QTest::newRow("http") << QStringLiteral("http://h:3128") << true << false << int(QNetworkProxy::HttpProxy)
                          << QStringLiteral("h") << 3128 << QString() << QString();
    QTest::newRow("http with credentials")
        << QStringLiteral("http://us%40er:p%3Ass@proxy.corp:8080") << true << false
        << int(QNetworkProxy::HttpProxy) << QStringLiteral("proxy.corp") << 8080 << QStringLiteral("us@er")
        << QStringLiteral("p:ss");
    QTest::newRow("socks5 with credentials")
        << QStringLiteral("socks5://u:p@h:1080") << true << false << int(QNetworkProxy::Socks5Proxy)
        << QStringLiteral("h") << 1080 << QStringLiteral("u") << QStringLiteral("p");
    QTest::newRow("socks5h") << QStringLiteral("socks5h://10.0.0.1:1080") << true << false
                             << int(QNetworkProxy::Socks5Proxy) << QStringLiteral("10.0.0.1") << 1080
                             << QString() << QString();

    QTest::newRow("bad: no scheme") << QStringLiteral("h:3128") << false << false << none << QString() << 0
                                    << QString() << QString();
    QTest::newRow("bad: no port") << QStringLiteral("http://h") << false << false << none << QString() << 0
                                  << QString() << QString();
    QTest::newRow("bad: no host") << QStringLiteral("http://:3128") << false << false << none << QString()
                                  << 0 << QString() << QString();
    QTest::newRow("bad: socks4") << QStringLiteral("socks4://h:1080") << false << false << none << QString()
                                 << 0 << QString() << QString();
    QTest::newRow("bad: ftp") << QStringLiteral("ftp://h:21") << false << false << none << QString() << 0
                              << QString() << QString();
    QTest::newRow("bad: word") << QStringLiteral("direct") << false << false << none << QString() << 0
                               << QString() << QString();
    QTest::newRow("bad: port 0") << QStringLiteral("http://h:0") << false << false << none << QString() << 0
                                 << QString() << QString();
}

void tst_ProxyConfig::parseUpstreamProxy()
{
    QFETCH(QString, text);
    QFETCH(bool, ok);
    QFETCH(bool, useSystem);
    QFETCH(int, type);
    QFETCH(QString, host);
    QFETCH(int, port);
    QFETCH(QString, user);
    QFETCH(QString, password);

    QNetworkProxy proxy(QNetworkProxy::FtpCachingProxy, QStringLiteral("sentinel"), 1);
    bool gotSystem = !useSystem;
    QString error;
    QCOMPARE(ProxyConfig::parseUpstreamProxy(text, &proxy, &gotSystem, &error), ok);
    if (!ok) {
        QVERIFY(!error.isEmpty());
        QVERIFY(!gotSystem);
        QCOMPARE(proxy.type(), QNetworkProxy::FtpCachingProxy); // untouched
        return;
    }
    QVERIFY(error.isEmpty());
    QCOMPARE(gotSystem, useSystem);
    QCOMPARE(int(proxy.type()), type);
    if (type == QNetworkProxy::HttpProxy || type == QNetworkProxy::Socks5Proxy) {
        QCOMPARE(proxy.hostName(), host);
        QCOMPARE(int(proxy.port()), port);
        QCOMPARE(proxy.user(), user);
        QCOMPARE(proxy.password(), password);
    }
}

void tst_ProxyConfig::validateDefaults()
{
    const ProxyConfig config;
    QVERIFY2(config.validate().isEmpty(), qPrintable(config.validate().join(QLatin1Char('\n'))));
    QCOMPARE(config.listenHost, QStringLiteral("127.0.0.1"));
    QCOMPARE(config.listenPort, quint16(9000));
    QVERIFY(!config.allowRemoteClients);
}

void tst_ProxyConfig::validateListenAddress_data()
{
    QTest::addColumn<QString>("host");
    QTest::addColumn<bool>("allowRemote");
    QTest::addColumn<bool>("valid");

    QTest::newRow("127.0.0.1") << QStringLiteral("127.0.0.1") << false << true;
    QTest::newRow("127.0.0.2") << QStringLiteral("127.0.0.2") << false << true;
    QTest::newRow("::1") << QStringLiteral("::1") << false << true;
    QTest::newRow("localhost") << QStringLiteral("localhost") << false << true;
    QTest::newRow("0.0.0.0 refused") << QStringLiteral("0.0.0.0") << false << false;
    QTest::newRow("0.0.0.0 allowed") << QStringLiteral("0.0.0.0") << true << true;
    QTest::newRow(":: refused") << QStringLiteral("::") << false << false;
    QTest::newRow(":: allowed") << QStringLiteral("::") << true << true;
    QTest::newRow("LAN address refused") << QStringLiteral("192.168.1.10") << false << false;
    QTest::newRow("LAN address allowed") << QStringLiteral("192.168.1.10") << true << true;
    QTest::newRow("public v6 refused") << QStringLiteral("2001:db8::5") << false << false;
    QTest::newRow("host name") << QStringLiteral("example.com") << true << false;
    QTest::newRow("empty") << QString() << false << false;
}

void tst_ProxyConfig::remoteListeningNeedsToken()
{
    ProxyConfig config;
    config.listenHost = QStringLiteral("0.0.0.0");
    config.allowRemoteClients = true;
    QStringList problems = config.validate();
    QCOMPARE(problems.size(), 1);
    QVERIFY2(problems.first().contains(QLatin1String("security/clientToken")), qPrintable(problems.first()));
    config.clientToken = QStringLiteral("krt-0123456789abcdefghij");
    QVERIFY(config.validate().isEmpty());

    ProxyConfig behindReverseProxy;
    behindReverseProxy.allowedHosts = { QStringLiteral("api.example.test") };
    problems = behindReverseProxy.validate();
    QCOMPARE(problems.size(), 1);
    QVERIFY2(problems.first().contains(QLatin1String("security/allowedHosts")), qPrintable(problems.first()));
    behindReverseProxy.clientToken = QStringLiteral("krt-0123456789abcdefghij");
    QVERIFY(behindReverseProxy.validate().isEmpty());
}

void tst_ProxyConfig::validateListenAddress()
{
    QFETCH(QString, host);
    QFETCH(bool, allowRemote);
    QFETCH(bool, valid);
    ProxyConfig config;
    config.listenHost = host;
    config.allowRemoteClients = allowRemote;
    if (allowRemote) // remote access always needs the client token (tested below)
        config.clientToken = QStringLiteral("krt-0123456789abcdefghij");
    const QStringList problems = config.validate();
    QCOMPARE(problems.isEmpty(), valid);
    if (!valid) {
        QCOMPARE(problems.size(), 1);
        if (!host.isEmpty())
            QVERIFY2(problems.first().contains(host), qPrintable(problems.first()));
    }
}

void tst_ProxyConfig::validateRanges()
{
    ProxyConfig config;
    config.upstream = QUrl(QStringLiteral("ftp://x"));
    config.upstreamProxy = QStringLiteral("gopher://h:70");
    config.reorderThreshold = 0;
    config.reorderDepth = 1001;
    config.connectTimeoutSec = 0;
    config.idleTimeoutSec = 86401;
    config.maxBodyBytes = 1023;
    config.stripPrefixes = { QStringLiteral("release"), QStringLiteral("/"), QStringLiteral("/ok") };
    const QStringList problems = config.validate();
    QCOMPARE(problems.size(), 9);
    const QString text = problems.join(QLatin1Char('\n'));
    QVERIFY(text.contains(QLatin1String("ftp://x")));
    QVERIFY(text.contains(QLatin1String("threshold")));
    QVERIFY(text.contains(QLatin1String("depth")));
    QVERIFY(text.contains(QLatin1String("connect timeout")));
    QVERIFY(text.contains(QLatin1String("idle timeout")));
    QVERIFY(text.contains(QLatin1String("body")));
    QVERIFY(text.contains(QLatin1String("\"release\"")));
    QVERIFY(!text.contains(QLatin1String("\"/ok\"")));

    ProxyConfig edges;
    edges.reorderThreshold = 1;
    edges.reorderDepth = 1000;
    edges.connectTimeoutSec = 3600;
    edges.idleTimeoutSec = 1;
    edges.maxBodyBytes = 1024;
    edges.upstreamProxy = QStringLiteral("system");
    edges.upstream = QUrl(QStringLiteral("http://127.0.0.1:8000/v1"));
    QVERIFY2(edges.validate().isEmpty(), qPrintable(edges.validate().join(QLatin1Char('\n'))));
}

void tst_ProxyConfig::listenAddresses()
{
    ProxyConfig config;
    config.listenHost = QStringLiteral("localhost");
    QCOMPARE(config.listenAddresses(),
             (QList<QHostAddress> { QHostAddress(QHostAddress::LocalHost),
                                    QHostAddress(QHostAddress::LocalHostIPv6) }));
    config.listenHost = QStringLiteral("LocalHost");
    QCOMPARE(config.listenAddresses().size(), 2);
    config.listenHost = QStringLiteral("127.0.0.1");
    QCOMPARE(config.listenAddresses(), QList<QHostAddress> { QHostAddress(QHostAddress::LocalHost) });
    config.listenHost = QStringLiteral("::1");
    QCOMPARE(config.listenAddresses(), QList<QHostAddress> { QHostAddress(QHostAddress::LocalHostIPv6) });
    config.listenHost = QStringLiteral("0.0.0.0");
    QCOMPARE(config.listenAddresses(), QList<QHostAddress> { QHostAddress(QHostAddress::AnyIPv4) });
    config.listenHost = QStringLiteral("nothost");
    QVERIFY(config.listenAddresses().isEmpty());
}

void tst_ProxyConfig::endpointUrl_data()
{
    QTest::addColumn<QString>("host");
    QTest::addColumn<int>("listenPort");
    QTest::addColumn<int>("actualPort");
    QTest::addColumn<QString>("url");

    QTest::newRow("default") << QStringLiteral("127.0.0.1") << 9000 << 0
                             << QStringLiteral("http://127.0.0.1:9000");
    QTest::newRow("actual port wins")
        << QStringLiteral("127.0.0.1") << 0 << 40123 << QStringLiteral("http://127.0.0.1:40123");
    QTest::newRow("localhost") << QStringLiteral("localhost") << 8080 << 0
                               << QStringLiteral("http://localhost:8080");
    QTest::newRow("any v4 -> loopback")
        << QStringLiteral("0.0.0.0") << 9000 << 0 << QStringLiteral("http://127.0.0.1:9000");
    QTest::newRow("v6 loopback bracketed")
        << QStringLiteral("::1") << 9000 << 0 << QStringLiteral("http://[::1]:9000");
    QTest::newRow("LAN address") << QStringLiteral("192.168.1.10") << 9001 << 9002
                                 << QStringLiteral("http://192.168.1.10:9002");
}

void tst_ProxyConfig::endpointUrl()
{
    QFETCH(QString, host);
    QFETCH(int, listenPort);
    QFETCH(int, actualPort);
    QFETCH(QString, url);
    ProxyConfig config;
    config.listenHost = host;
    config.listenPort = quint16(listenPort);
    const QString endpoint = config.endpointUrl(quint16(actualPort));
    QCOMPARE(endpoint, url);
    QVERIFY(QUrl(endpoint, QUrl::StrictMode).isValid());
}

// Regression: "::" is not mapped to a loopback address like "0.0.0.0" is, because
// QHostAddress("::") (AnyIPv6) != QHostAddress(QHostAddress::Any) under operator== (strict comparison).
void tst_ProxyConfig::endpointUrlOfAnyIPv6()
{
    ProxyConfig config;
    config.listenHost = QStringLiteral("::");
    const QString endpoint = config.endpointUrl();
    QVERIFY2(endpoint == QStringLiteral("http://[::1]:9000")
                 || endpoint == QStringLiteral("http://127.0.0.1:9000"),
             qPrintable(endpoint));
}

QTEST_GUILESS_MAIN(tst_ProxyConfig)
void tst_ProxyConfig::normalizePathPrefixes_data()
{
    QTest::addColumn<QStringList>("raw");
    QTest::addColumn<bool>("addLeadingSlash");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<QStringList>("expected");

    const QStringList releaseTest { QStringLiteral("/release"), QStringLiteral("/test") };
    QTest::newRow("clean") << releaseTest << false << true << releaseTest;
    QTest::newRow("spaces, trailing slashes, empties")
        << QStringList { QStringLiteral(" /release// "), QString(), QStringLiteral("/"),
                         QStringLiteral("/test/") }
        << false << true << releaseTest;
    QTest::newRow("missing slash refused")
        << QStringList { QStringLiteral("/release"), QStringLiteral("test") } << false << false
        << QStringList();
    QTest::newRow("missing slash added")
        << QStringList { QStringLiteral("release"), QStringLiteral(" test/") } << true << true << releaseTest;
}

void tst_ProxyConfig::normalizePathPrefixes()
{
    QFETCH(QStringList, raw);
    QFETCH(bool, addLeadingSlash);
    QFETCH(bool, ok);
    QFETCH(QStringList, expected);
    QStringList prefixes { QStringLiteral("/unchanged-on-failure") };
    QCOMPARE(ProxyConfig::normalizePathPrefixes(raw, addLeadingSlash, &prefixes), ok);
    if (ok)
        QCOMPARE(prefixes, expected);
    else
        QCOMPARE(prefixes, QStringList { QStringLiteral("/unchanged-on-failure") });
}

#include "tst_proxyconfig.moc"
