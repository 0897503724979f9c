// Unit tests of SettingsRegistry: defaults, INI round trips, validation, recovery from bad files, signals.
#include "settingsregistry.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRandomGenerator>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

using keyrelay::ProxyConfig;
using keyrelay::Setting;
using keyrelay::SettingsRegistry;

namespace {

constexpr int SettingCount = int(Setting::Count);

bool writeFile(const QString &path, const QByteArray &contents)
{
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate))
        return false;
    return file.write(contents) == contents.size();
}

QByteArray readFile(const QString &path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return {};
    return file.readAll();
}

/// The copies of damaged settings files kept in @p dir.
QStringList damagedCopies(const QTemporaryDir &dir)
{
    return QDir(dir.path()).entryList({ QStringLiteral("*.damaged-*") }, QDir::Files);
}

QString problemsText(const SettingsRegistry &registry)
{
    return registry.problems().join(QLatin1Char('\n'));
}

} // namespace

class tst_SettingsRegistry : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void specTable();
    void defaultsWhenFileMissing();
    void valuesRoundTrip();
    void stripPrefixListsRoundTrip_data();
    void stripPrefixListsRoundTrip();
    void invalidValueInFile_data();
    void invalidValueInFile();
    void damagedCopyIsNeverReplaced();
    void lineOfAnIgnoredValue_data();
    void lineOfAnIgnoredValue();
    void credentialsNeverInAProblem();
    void emptyListsAreWrittenEmpty_data();
    void emptyListsAreWrittenEmpty();
    void emptyListsReadInBothForms_data();
    void emptyListsReadInBothForms();
    void everySettingRoundTrips_data();
    void everySettingRoundTrips();
    void binaryGarbageFile();
    void changedOnlyOnRealChange();
    void invalidSetValueKeepsOldValue();
    void setValueNormalises_data();
    void setValueNormalises();
    void settingsVersionWritten();
    void newerVersionIsAProblem();
    void proxyConfigRoundTrip();
    void stripPrefixesStringForm();
    void problemNamesTheDefault();
    void settingsVersionSurvivesAFreshRead();
    void newerVersionInKeyRelaysOwnSpelling();
    void migratesWildcardCorsToDefaultPolicy();
    void migratesSpecificCorsOriginToAllowList();

private:
    QString iniPath() const { return m_dir->filePath(QStringLiteral("keyrelay.ini")); }
    std::unique_ptr<QTemporaryDir> m_dir;
};

void tst_SettingsRegistry::initTestCase()
{
    qRegisterMetaType<keyrelay::Setting>("keyrelay::Setting");
}

void tst_SettingsRegistry::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
}

void tst_SettingsRegistry::specTable()
{
    // Every setting has a row, in enum order, with a unique group/key name and a valid default.
    QSet<QString> names;
    for (int i = 0; i < SettingCount; ++i) {
        const auto setting = Setting(i);
        const keyrelay::SettingSpec &spec = SettingsRegistry::spec(setting);
        QCOMPARE(int(spec.id), i);
        const QString name = SettingsRegistry::name(setting);
        QVERIFY2(name.contains(QLatin1Char('/')), qPrintable(name));
        QVERIFY2(!names.contains(name), qPrintable(name));
        names.insert(name);
        QVariant defaultValue = spec.defaultValue;
        QVERIFY2(spec.validate(defaultValue), qPrintable(name));
    }
    QCOMPARE(SettingsRegistry::name(Setting::ListenPort), QStringLiteral("proxy/listenPort"));
}

void tst_SettingsRegistry::defaultsWhenFileMissing()
{
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QVERIFY2(registry->problems().isEmpty(), qPrintable(problemsText(*registry)));
        QCOMPARE(registry->fileVersion(), 0);
        QCOMPARE(registry->fileName(), iniPath());
        for (int i = 0; i < SettingCount; ++i)
            QCOMPARE(registry->value(Setting(i)), SettingsRegistry::spec(Setting(i)).defaultValue);
        QCOMPARE(registry->value(Setting::ListenHost).toString(), QStringLiteral("127.0.0.1"));
        QCOMPARE(registry->value(Setting::ListenPort).toInt(), 9000);
        QCOMPARE(registry->value(Setting::AllowRemoteClients).toBool(), false);
        QCOMPARE(registry->value(Setting::Upstream).toString(), QStringLiteral("https://api.openai.com"));
        QCOMPARE(registry->value(Setting::ReorderEnabled).toBool(), true);
        QCOMPARE(registry->value(Setting::ReorderThreshold).toInt(), 4);
        QCOMPARE(registry->value(Setting::ReorderDepth).toInt(), 3);
        QVERIFY(registry->value(Setting::StripPrefixes).toStringList().isEmpty());

        const ProxyConfig config = registry->proxyConfig();
        const ProxyConfig defaults;
        QCOMPARE(config.listenHost, defaults.listenHost);
        QCOMPARE(config.listenPort, defaults.listenPort);
        QCOMPARE(config.upstream, defaults.upstream);
        QCOMPARE(config.maxBodyBytes, defaults.maxBodyBytes);
        QVERIFY(config.validate().isEmpty());
    }
    // Only reading creates neither the file nor a backup.
    QVERIFY(!QFile::exists(iniPath()));
    QVERIFY(!QFile::exists(iniPath() + QStringLiteral(".bak")));
    QVERIFY(damagedCopies(*m_dir).isEmpty());
}

void tst_SettingsRegistry::valuesRoundTrip()
{
    {
        const auto writer = SettingsRegistry::openIni(iniPath());
        QVERIFY(writer->setValue(Setting::ListenHost, QStringLiteral("::1")));
        QVERIFY(writer->setValue(Setting::ListenPort, 8123));
        QVERIFY(writer->setValue(Setting::AllowRemoteClients, true));
        QVERIFY(writer->setValue(Setting::Upstream, QStringLiteral("https://example.com/openai/v1/")));
        QVERIFY(writer->setValue(Setting::UpstreamProxy, QStringLiteral("socks5://u:p@proxy.local:1080")));
        QVERIFY(writer->setValue(Setting::ReorderEnabled, false));
        QVERIFY(writer->setValue(Setting::ReorderThreshold, 7));
        QVERIFY(writer->setValue(Setting::ReorderDepth, 2));
        QVERIFY(writer->setValue(Setting::StripPrefixes,
                                 QStringList { QStringLiteral("/release"), QStringLiteral("/test") }));
        QVERIFY(writer->setValue(Setting::ConnectTimeoutSec, 5));
        QVERIFY(writer->setValue(Setting::IdleTimeoutSec, 60));
        QVERIFY(writer->setValue(Setting::MaxBodyMiB, 64));
        QVERIFY(writer->setValue(Setting::AllowedOrigins,
                                 QStringLiteral("https://app.example, https://*.corp.example")));
        QVERIFY(writer->setValue(Setting::AllowAnyWebsite, true));
        QVERIFY(writer->setValue(Setting::ClientToken, QStringLiteral("krt-0123456789abcdefXYZ")));
        QVERIFY(writer->setValue(Setting::AllowedHosts, QStringLiteral("api.example.test")));
        QVERIFY(writer->setValue(Setting::StartMinimized, true));
        QVERIFY(writer->setValue(Setting::StartAtLogin, true));
        QVERIFY(writer->sync());
    }
    QVERIFY(QFile::exists(iniPath()));

    const auto reader = SettingsRegistry::openIni(iniPath());
    QVERIFY2(reader->problems().isEmpty(), qPrintable(problemsText(*reader)));
    QCOMPARE(reader->value(Setting::ListenHost).toString(), QStringLiteral("::1"));
    QCOMPARE(reader->value(Setting::ListenPort).toInt(), 8123);
    QCOMPARE(reader->value(Setting::AllowRemoteClients).toBool(), true);
    QCOMPARE(reader->value(Setting::Upstream).toString(), QStringLiteral("https://example.com/openai/v1"));
    QCOMPARE(reader->value(Setting::UpstreamProxy).toString(),
             QStringLiteral("socks5://u:p@proxy.local:1080"));
    QCOMPARE(reader->value(Setting::ReorderEnabled).toBool(), false);
    QCOMPARE(reader->value(Setting::ReorderThreshold).toInt(), 7);
    QCOMPARE(reader->value(Setting::ReorderDepth).toInt(), 2);
    QCOMPARE(reader->value(Setting::StripPrefixes).toStringList(),
             (QStringList { QStringLiteral("/release"), QStringLiteral("/test") }));
    QCOMPARE(reader->value(Setting::ConnectTimeoutSec).toInt(), 5);
    QCOMPARE(reader->value(Setting::IdleTimeoutSec).toInt(), 60);
    QCOMPARE(reader->value(Setting::MaxBodyMiB).toInt(), 64);
    QCOMPARE(
        reader->value(Setting::AllowedOrigins).toStringList(),
        (QStringList { QStringLiteral("https://app.example"), QStringLiteral("https://*.corp.example") }));
    QCOMPARE(reader->value(Setting::AllowAnyWebsite).toBool(), true);
    QCOMPARE(reader->value(Setting::ClientToken).toString(), QStringLiteral("krt-0123456789abcdefXYZ"));
    QCOMPARE(reader->value(Setting::AllowedHosts).toStringList(),
             QStringList { QStringLiteral("api.example.test") });
    QCOMPARE(reader->value(Setting::StartMinimized).toBool(), true);
    QCOMPARE(reader->value(Setting::StartAtLogin).toBool(), true);
    QCOMPARE(reader->fileVersion(), SettingsRegistry::CurrentVersion);
    QVERIFY(damagedCopies(*m_dir).isEmpty());
}

void tst_SettingsRegistry::stripPrefixListsRoundTrip_data()
{
    QTest::addColumn<QStringList>("prefixes");
    QTest::newRow("empty") << QStringList();
    QTest::newRow("one") << QStringList { QStringLiteral("/release") };
    QTest::newRow("three") << QStringList { QStringLiteral("/a"), QStringLiteral("/b/c"),
                                            QStringLiteral("/d") };
}

void tst_SettingsRegistry::stripPrefixListsRoundTrip()
{
    QFETCH(QStringList, prefixes);
    {
        const auto writer = SettingsRegistry::openIni(iniPath());
        // Start from something else so that the value really is written.
        QVERIFY(writer->setValue(Setting::StripPrefixes,
                                 QStringList { QStringLiteral("/x"), QStringLiteral("/y") }));
        QVERIFY(writer->setValue(Setting::StripPrefixes, prefixes));
        QCOMPARE(writer->value(Setting::StripPrefixes).toStringList(), prefixes);
    }
    const auto reader = SettingsRegistry::openIni(iniPath());
    QVERIFY2(reader->problems().isEmpty(), qPrintable(problemsText(*reader)));
    QCOMPARE(reader->value(Setting::StripPrefixes).toStringList(), prefixes);
    QCOMPARE(reader->proxyConfig().stripPrefixes, prefixes);
}

void tst_SettingsRegistry::invalidValueInFile_data()
{
    QTest::addColumn<QByteArray>("section");
    QTest::addColumn<QByteArray>("line");
    QTest::addColumn<Setting>("setting");

    QTest::newRow("port abc") << QByteArrayLiteral("proxy") << QByteArrayLiteral("listenPort=abc")
                              << Setting::ListenPort;
    QTest::newRow("port 70000") << QByteArrayLiteral("proxy") << QByteArrayLiteral("listenPort=70000")
                                << Setting::ListenPort;
    QTest::newRow("port -1") << QByteArrayLiteral("proxy") << QByteArrayLiteral("listenPort=-1")
                             << Setting::ListenPort;
    QTest::newRow("port empty") << QByteArrayLiteral("proxy") << QByteArrayLiteral("listenPort=")
                                << Setting::ListenPort;
    QTest::newRow("upstream ftp") << QByteArrayLiteral("proxy") << QByteArrayLiteral("upstream=ftp://x")
                                  << Setting::Upstream;
    QTest::newRow("upstream no scheme")
        << QByteArrayLiteral("proxy") << QByteArrayLiteral("upstream=api.openai.com") << Setting::Upstream;
    QTest::newRow("threshold 0") << QByteArrayLiteral("rewrite") << QByteArrayLiteral("threshold=0")
                                 << Setting::ReorderThreshold;
    QTest::newRow("depth 5000") << QByteArrayLiteral("rewrite") << QByteArrayLiteral("depth=5000")
                                << Setting::ReorderDepth;
    QTest::newRow("garbage bool") << QByteArrayLiteral("security")
                                  << QByteArrayLiteral("allowRemoteClients=maybe")
                                  << Setting::AllowRemoteClients;
    QTest::newRow("garbage bool 2") << QByteArrayLiteral("rewrite")
                                    << QByteArrayLiteral("reorderSystemMessage=2") << Setting::ReorderEnabled;
    QTest::newRow("listen host name")
        << QByteArrayLiteral("proxy") << QByteArrayLiteral("listenHost=example.com") << Setting::ListenHost;
    QTest::newRow("proxy without port")
        << QByteArrayLiteral("proxy") << QByteArrayLiteral("upstreamProxy=http://proxy.local")
        << Setting::UpstreamProxy;
    QTest::newRow("relative strip prefix")
        << QByteArrayLiteral("proxy") << QByteArrayLiteral("stripPrefixes=release") << Setting::StripPrefixes;
    QTest::newRow("origin with a path")
        << QByteArrayLiteral("security") << QByteArrayLiteral("allowedOrigins=https://a.example/path")
        << Setting::AllowedOrigins;
    QTest::newRow("short client token")
        << QByteArrayLiteral("security") << QByteArrayLiteral("clientToken=short") << Setting::ClientToken;
    QTest::newRow("host with a path")
        << QByteArrayLiteral("security") << QByteArrayLiteral("allowedHosts=a.example/x")
        << Setting::AllowedHosts;
    QTest::newRow("max body 0") << QByteArrayLiteral("proxy") << QByteArrayLiteral("maxBodyMiB=0")
                                << Setting::MaxBodyMiB;
    QTest::newRow("idle timeout huge")
        << QByteArrayLiteral("proxy") << QByteArrayLiteral("idleTimeoutSec=999999999999")
        << Setting::IdleTimeoutSec;
}

void tst_SettingsRegistry::invalidValueInFile()
{
    QFETCH(QByteArray, section);
    QFETCH(QByteArray, line);
    QFETCH(Setting, setting);

    // One bad value among good ones; the good ones must still be read.
    const QByteArray contents = QByteArrayLiteral("[ui]\nstartAtLogin=true\n\n[") + section
        + QByteArrayLiteral("]\n") + line + QByteArrayLiteral("\n\n[ui]\nstartMinimized=true\n");
    QVERIFY(writeFile(iniPath(), contents));

    const auto registry = SettingsRegistry::openIni(iniPath());
    QCOMPARE(registry->value(setting), SettingsRegistry::spec(setting).defaultValue);
    QCOMPARE(registry->value(Setting::StartMinimized).toBool(), true);
    QCOMPARE(registry->value(Setting::StartAtLogin).toBool(), true);

    const QStringList problems = registry->problems();
    QVERIFY(!problems.isEmpty());
    const QString text = problems.join(QLatin1Char('\n'));
    QVERIFY2(text.contains(SettingsRegistry::name(setting)), qPrintable(text));
    // Only the bad setting is named.
    for (int i = 0; i < SettingCount; ++i) {
        if (Setting(i) != setting)
            QVERIFY2(!text.contains(SettingsRegistry::name(Setting(i)) + QLatin1Char(' ')), qPrintable(text));
    }

    // The report says where the value was (line 5: after "[ui]", "startAtLogin", a blank line and the
    // section), what it was and what is used instead; and so does the structured list the window shows.
    QVERIFY2(text.contains(QLatin1String("line 5: setting ") + SettingsRegistry::name(setting)),
             qPrintable(text));
    const QList<keyrelay::IgnoredSetting> ignored = registry->ignoredSettings();
    QCOMPARE(ignored.size(), 1);
    QCOMPARE(ignored.first().name, SettingsRegistry::name(setting));
    QCOMPARE(ignored.first().line, 5);
    const QByteArray fileValue = line.mid(line.indexOf('=') + 1);
    if (setting != Setting::ClientToken)
        QCOMPARE(ignored.first().value, QString::fromUtf8(fileValue));
    QVERIFY(!ignored.first().value.contains(QLatin1String("short")) || setting != Setting::ClientToken);
    QVariant defaultValue = SettingsRegistry::spec(setting).defaultValue;
    const QString kept = defaultValue.typeId() == QMetaType::QStringList
        ? defaultValue.toStringList().join(QLatin1Char(','))
        : defaultValue.toString();
    QCOMPARE(ignored.first().kept, kept);

    // The original file is kept aside, byte for byte, readable by its owner only, and the report says where.
    const QString backup = registry->damagedCopy();
    QVERIFY(backup.startsWith(iniPath() + QStringLiteral(".damaged-")));
    QCOMPARE(damagedCopies(*m_dir), QStringList { QFileInfo(backup).fileName() });
    QCOMPARE(readFile(backup), contents);
    QCOMPARE(QFile::permissions(backup) & ~(QFile::ReadUser | QFile::WriteUser),
             QFile::ReadOwner | QFile::WriteOwner);
    QVERIFY2(text.contains(backup), qPrintable(text));
}

void tst_SettingsRegistry::damagedCopyIsNeverReplaced()
{
    const QByteArray first = QByteArrayLiteral("[proxy]\nlistenPort=abc\n");
    QVERIFY(writeFile(iniPath(), first));
    QString firstCopy;
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        firstCopy = registry->damagedCopy();
        QVERIFY(!firstCopy.isEmpty());
    }
    // The next start with the same damaged file finds its copy and makes no other.
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QCOMPARE(registry->damagedCopy(), firstCopy);
        QCOMPARE(damagedCopies(*m_dir).size(), 1);
        QVERIFY(registry->problems().join(QLatin1Char('\n')).contains(firstCopy));
    }
    // A file damaged differently gets a copy of its own; the first one stays as it was.
    const QByteArray second = QByteArrayLiteral("[proxy]\nlistenPort=70000\n");
    QVERIFY(writeFile(iniPath(), second));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY(!registry->damagedCopy().isEmpty());
    QVERIFY(registry->damagedCopy() != firstCopy);
    QCOMPARE(damagedCopies(*m_dir).size(), 2);
    QCOMPARE(readFile(firstCopy), first);
    QCOMPARE(readFile(registry->damagedCopy()), second);
}

void tst_SettingsRegistry::lineOfAnIgnoredValue_data()
{
    QTest::addColumn<QByteArray>("contents");
    QTest::addColumn<int>("line");
    QTest::newRow("first line of its section")
        << QByteArrayLiteral("; comment\n[proxy]\nlistenPort=abc\n") << 3;
    QTest::newRow("same key in another section first") << QByteArrayLiteral(
        "[other]\nlistenPort=1\n\n[proxy]\nupstream=https://a.example\nlistenPort = abc\n")
                                                       << 6;
    QTest::newRow("written twice: the last counts")
        << QByteArrayLiteral("[proxy]\nlistenPort=9100\nlistenPort=abc\n") << 3;
    QTest::newRow("CRLF line ends") << QByteArrayLiteral(
        "[meta]\r\nsettingsVersion=2\r\n[proxy]\r\nlistenPort=abc\r\n")
                                    << 4;
}

void tst_SettingsRegistry::lineOfAnIgnoredValue()
{
    QFETCH(QByteArray, contents);
    QFETCH(int, line);
    QVERIFY(writeFile(iniPath(), contents));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QCOMPARE(registry->value(Setting::ListenPort).toInt(), 9000);
    QCOMPARE(registry->ignoredSettings().size(), 1);
    QCOMPARE(registry->ignoredSettings().first().line, line);
    QCOMPARE(registry->ignoredSettings().first().value, QStringLiteral("abc"));
    QCOMPARE(registry->ignoredSettings().first().kept, QStringLiteral("9000"));
}

void tst_SettingsRegistry::credentialsNeverInAProblem()
{
    QVERIFY(writeFile(iniPath(),
                      QByteArrayLiteral("[proxy]\nupstreamProxy=http://me:pw-secret-4711@proxy.local\n"
                                        "[security]\nclientToken=tok secret-4712 with spaces\n")));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QCOMPARE(registry->ignoredSettings().size(), 2);
    QString all = problemsText(*registry);
    for (const keyrelay::IgnoredSetting &ignored : registry->ignoredSettings())
        all += ignored.value + ignored.kept + ignored.why;
    QVERIFY2(!all.contains(QLatin1String("secret-4711")), qPrintable(all));
    QVERIFY2(!all.contains(QLatin1String("secret-4712")), qPrintable(all));
}

void tst_SettingsRegistry::emptyListsAreWrittenEmpty_data()
{
    QTest::addColumn<Setting>("setting");
    QTest::addColumn<QByteArray>("line");
    QTest::newRow("stripPrefixes") << Setting::StripPrefixes << QByteArrayLiteral("stripPrefixes=");
    QTest::newRow("allowedOrigins") << Setting::AllowedOrigins << QByteArrayLiteral("allowedOrigins=");
    QTest::newRow("allowedHosts") << Setting::AllowedHosts << QByteArrayLiteral("allowedHosts=");
}

void tst_SettingsRegistry::emptyListsAreWrittenEmpty()
{
    QFETCH(Setting, setting);
    QFETCH(QByteArray, line);
    const QStringList one = setting == Setting::StripPrefixes ? QStringList { QStringLiteral("/release") }
        : setting == Setting::AllowedOrigins ? QStringList { QStringLiteral("https://a.example") }
                                             : QStringList { QStringLiteral("a.example") };
    {
        const auto writer = SettingsRegistry::openIni(iniPath());
        QVERIFY(writer->setValue(setting, one));
        QVERIFY(writer->setValue(setting, QStringList()));
        QVERIFY(writer->sync());
    }
    const QByteArray file = readFile(iniPath());
    QVERIFY2(!file.contains("@Invalid()"), file.constData());
    QVERIFY2(file.split('\n').contains(line), file.constData());
    const auto reader = SettingsRegistry::openIni(iniPath());
    QVERIFY2(reader->problems().isEmpty(), qPrintable(problemsText(*reader)));
    QCOMPARE(reader->value(setting).toStringList(), QStringList());
}

void tst_SettingsRegistry::emptyListsReadInBothForms_data()
{
    QTest::addColumn<QByteArray>("contents");
    QTest::newRow("empty value") << QByteArrayLiteral(
        "[proxy]\nstripPrefixes=\n[security]\nallowedOrigins=\nallowedHosts=\n");
    QTest::newRow("@Invalid() from older versions")
        << QByteArrayLiteral("[proxy]\nstripPrefixes=@Invalid()\n[security]\nallowedOrigins=@Invalid()\n"
                             "allowedHosts=@Invalid()\n");
}

void tst_SettingsRegistry::emptyListsReadInBothForms()
{
    QFETCH(QByteArray, contents);
    QVERIFY(writeFile(iniPath(), contents));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY2(registry->problems().isEmpty(), qPrintable(problemsText(*registry)));
    QCOMPARE(registry->value(Setting::StripPrefixes).toStringList(), QStringList());
    QCOMPARE(registry->value(Setting::AllowedOrigins).toStringList(), QStringList());
    QCOMPARE(registry->value(Setting::AllowedHosts).toStringList(), QStringList());
}

void tst_SettingsRegistry::everySettingRoundTrips_data()
{
    // A value other than the default for every setting, as the UI would set it.
    QTest::addColumn<Setting>("setting");
    QTest::addColumn<QVariant>("value");
    const QList<QPair<Setting, QVariant>> rows {
        { Setting::ListenHost, QStringLiteral("::1") },
        { Setting::ListenPort, 8123 },
        { Setting::AllowRemoteClients, true },
        { Setting::Upstream, QStringLiteral("https://example.com/openai/v1") },
        { Setting::UpstreamProxy, QStringLiteral("http://me@proxy.local:3128") },
        { Setting::ReorderEnabled, false },
        { Setting::ReorderThreshold, 7 },
        { Setting::ReorderDepth, 2 },
        { Setting::StripPrefixes, QStringList { QStringLiteral("/a"), QStringLiteral("/b") } },
        { Setting::ConnectTimeoutSec, 5 },
        { Setting::IdleTimeoutSec, 60 },
        { Setting::MaxBodyMiB, 64 },
        { Setting::HeadTimeoutSec, 20 },
        { Setting::MaxConnections, 100 },
        { Setting::RecheckInvalidSec, 120 },
        { Setting::RecheckExhaustedSec, 7200 },
        { Setting::MaxAttempts, 5 },
        { Setting::MaxConcurrentPerKey, 2 },
        { Setting::RequestStreamUsage, false },
        { Setting::UpstreamHttp2, false },
        { Setting::AllowedOrigins,
          QStringList { QStringLiteral("https://a.example"), QStringLiteral("https://*.b.example") } },
        { Setting::AllowAnyWebsite, true },
        { Setting::ClientToken, QStringLiteral("krt-0123456789abcdefXYZ") },
        { Setting::AllowedHosts, QStringList { QStringLiteral("a.example") } },
        { Setting::StartMinimized, true },
        { Setting::StartAtLogin, true },
    };
    QCOMPARE(rows.size(), SettingCount); // a new setting needs a row here
    for (const auto &row : rows)
        QTest::newRow(qPrintable(SettingsRegistry::name(row.first))) << row.first << row.second;
}

void tst_SettingsRegistry::everySettingRoundTrips()
{
    QFETCH(Setting, setting);
    QFETCH(QVariant, value);
    QVERIFY(SettingsRegistry::spec(setting).defaultValue != value);
    {
        const auto writer = SettingsRegistry::openIni(iniPath());
        QVERIFY(writer->setValue(setting, value));
        QVERIFY(writer->sync());
    }
    {
        const auto reader = SettingsRegistry::openIni(iniPath());
        QVERIFY2(reader->problems().isEmpty(), qPrintable(problemsText(*reader)));
        QCOMPARE(reader->value(setting), value);
        // And back to the default (an empty list for the lists), which reads back the same.
        QVERIFY(reader->setValue(setting, SettingsRegistry::spec(setting).defaultValue));
        QVERIFY(reader->sync());
    }
    const QByteArray file = readFile(iniPath());
    QVERIFY2(!file.contains("@Invalid()"), file.constData());
    const auto again = SettingsRegistry::openIni(iniPath());
    QVERIFY2(again->problems().isEmpty(), qPrintable(problemsText(*again)));
    QCOMPARE(again->value(setting), SettingsRegistry::spec(setting).defaultValue);
}

void tst_SettingsRegistry::binaryGarbageFile()
{
    QRandomGenerator random(20261127);
    QByteArray garbage(8192, Qt::Uninitialized);
    for (char &c : garbage)
        c = char(random.bounded(256));
    QVERIFY(writeFile(iniPath(), garbage));

    const auto registry = SettingsRegistry::openIni(iniPath());
    for (int i = 0; i < SettingCount; ++i)
        QCOMPARE(registry->value(Setting(i)), SettingsRegistry::spec(Setting(i)).defaultValue);
    QCOMPARE(registry->fileVersion(), 0);
    if (!registry->problems().isEmpty())
        QCOMPARE(readFile(registry->damagedCopy()), garbage);
    QVERIFY(registry->proxyConfig().validate().isEmpty());

    // Text-like garbage with INI syntax errors too.
    QVERIFY(writeFile(
        iniPath(), QByteArrayLiteral("[proxy\nlistenPort==\n=\n[[[]]]\n\\\n\"unterminated\n\x01\x02\x03")));
    const auto again = SettingsRegistry::openIni(iniPath());
    for (int i = 0; i < SettingCount; ++i)
        QCOMPARE(again->value(Setting(i)), SettingsRegistry::spec(Setting(i)).defaultValue);
}

void tst_SettingsRegistry::changedOnlyOnRealChange()
{
    const auto registry = SettingsRegistry::openIni(iniPath());
    QSignalSpy changed(registry.get(), &SettingsRegistry::changed);
    QVERIFY(changed.isValid());

    QVERIFY(registry->setValue(Setting::ListenPort, 9100));
    QCOMPARE(changed.count(), 1);
    QCOMPARE(changed.at(0).at(0).value<Setting>(), Setting::ListenPort);
    QCOMPARE(changed.at(0).at(1).toInt(), 9100);

    QVERIFY(registry->setValue(Setting::ListenPort, 9100));
    QCOMPARE(changed.count(), 1);
    // The same value spelled differently is the same value.
    QVERIFY(registry->setValue(Setting::ListenPort, QStringLiteral(" 9100 ")));
    QCOMPARE(changed.count(), 1);

    // Setting the default on a fresh registry is no change either.
    QVERIFY(registry->setValue(Setting::ReorderDepth, 3));
    QCOMPARE(changed.count(), 1);

    QVERIFY(registry->setValue(Setting::AllowRemoteClients, QStringLiteral("yes")));
    QCOMPARE(changed.count(), 2);
    QCOMPARE(changed.at(1).at(0).value<Setting>(), Setting::AllowRemoteClients);
    QCOMPARE(changed.at(1).at(1), QVariant(true));
    QVERIFY(registry->setValue(Setting::AllowRemoteClients, true));
    QVERIFY(registry->setValue(Setting::AllowRemoteClients, QStringLiteral("on")));
    QCOMPARE(changed.count(), 2);

    registry->resetToDefault(Setting::ListenPort);
    QCOMPARE(changed.count(), 3);
    QCOMPARE(registry->value(Setting::ListenPort).toInt(), 9000);
    registry->resetToDefault(Setting::ListenPort);
    QCOMPARE(changed.count(), 3);
}

void tst_SettingsRegistry::invalidSetValueKeepsOldValue()
{
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY(registry->setValue(Setting::ListenPort, 9100));
    QSignalSpy changed(registry.get(), &SettingsRegistry::changed);

    QVERIFY(!registry->setValue(Setting::ListenPort, QStringLiteral("abc")));
    QVERIFY(!registry->setValue(Setting::ListenPort, 70000));
    QVERIFY(!registry->setValue(Setting::ListenPort, -5));
    QCOMPARE(registry->value(Setting::ListenPort).toInt(), 9100);
    QVERIFY(!registry->setValue(Setting::Upstream, QStringLiteral("ftp://x")));
    QVERIFY(!registry->setValue(Setting::Upstream, QStringLiteral("https://u:p@host")));
    QCOMPARE(registry->value(Setting::Upstream).toString(), QStringLiteral("https://api.openai.com"));
    QVERIFY(!registry->setValue(Setting::ReorderThreshold, 0));
    QVERIFY(!registry->setValue(Setting::ReorderEnabled, QStringLiteral("maybe")));
    QVERIFY(!registry->setValue(Setting::ListenHost, QStringLiteral("not a host")));
    QVERIFY(!registry->setValue(Setting::AllowedOrigins, QStringLiteral("https://a\r\nSet-Cookie: x")));
    QVERIFY(!registry->setValue(Setting::ClientToken, QStringLiteral("a token with spaces in it")));
    QVERIFY(!registry->setValue(Setting::UpstreamProxy, QStringLiteral("gopher://h:70")));
    QCOMPARE(changed.count(), 0);
    QVERIFY(registry->sync());

    // Nothing invalid reached the file.
    QSettings file(iniPath(), QSettings::IniFormat);
    QCOMPARE(file.value(QStringLiteral("proxy/listenPort")).toInt(), 9100);
    QVERIFY(!file.contains(QStringLiteral("proxy/upstream")));
    QVERIFY(!file.contains(QStringLiteral("rewrite/threshold")));
    QVERIFY(!file.contains(QStringLiteral("security/allowedOrigins")));
    QVERIFY(!file.contains(QStringLiteral("security/clientToken")));
}

void tst_SettingsRegistry::setValueNormalises_data()
{
    QTest::addColumn<Setting>("setting");
    QTest::addColumn<QVariant>("input");
    QTest::addColumn<QVariant>("stored");

    QTest::newRow("port from text") << Setting::ListenPort << QVariant(QStringLiteral(" 8080 "))
                                    << QVariant(8080);
    QTest::newRow("port 0") << Setting::ListenPort << QVariant(0) << QVariant(0);
    QTest::newRow("port 65535") << Setting::ListenPort << QVariant(65535) << QVariant(65535);
    QTest::newRow("bool 1") << Setting::StartAtLogin << QVariant(QStringLiteral("1")) << QVariant(true);
    QTest::newRow("bool TRUE") << Setting::StartAtLogin << QVariant(QStringLiteral("TRUE")) << QVariant(true);
    QTest::newRow("bool off") << Setting::ReorderEnabled << QVariant(QStringLiteral("off"))
                              << QVariant(false);
    QTest::newRow("host trimmed") << Setting::ListenHost << QVariant(QStringLiteral(" 0.0.0.0 "))
                                  << QVariant(QStringLiteral("0.0.0.0"));
    QTest::newRow("host localhost") << Setting::ListenHost << QVariant(QStringLiteral("LocalHost"))
                                    << QVariant(QStringLiteral("LocalHost"));
    QTest::newRow("upstream trailing slashes")
        << Setting::Upstream << QVariant(QStringLiteral(" http://127.0.0.1:8000/v1// "))
        << QVariant(QStringLiteral("http://127.0.0.1:8000/v1"));
    QTest::newRow("proxy system") << Setting::UpstreamProxy << QVariant(QStringLiteral(" system "))
                                  << QVariant(QStringLiteral("system"));
    QTest::newRow("threshold 1000") << Setting::ReorderThreshold << QVariant(1000) << QVariant(1000);
    QTest::newRow("origins trimmed and split")
        << Setting::AllowedOrigins << QVariant(QStringLiteral(" https://x.example , null,,https://x.example"))
        << QVariant(QStringList { QStringLiteral("https://x.example"), QStringLiteral("null") });
    QTest::newRow("token trimmed") << Setting::ClientToken
                                   << QVariant(QStringLiteral(" krt-abcdefghijklmnop "))
                                   << QVariant(QStringLiteral("krt-abcdefghijklmnop"));
}

void tst_SettingsRegistry::setValueNormalises()
{
    QFETCH(Setting, setting);
    QFETCH(QVariant, input);
    QFETCH(QVariant, stored);
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY(registry->setValue(setting, input));
    QCOMPARE(registry->value(setting), stored);
}

void tst_SettingsRegistry::settingsVersionWritten()
{
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QCOMPARE(registry->fileVersion(), 0);
        QVERIFY(registry->setValue(Setting::ListenPort, 9001));
        QCOMPARE(registry->fileVersion(), SettingsRegistry::CurrentVersion);
        QVERIFY(registry->sync());
    }
    // Checked in the bytes of the file: reading it back with QSettings in this process would only
    // see QSettings' in-memory cache of the file (see settingsVersionSurvivesAFreshRead).
    const QByteArray contents = readFile(iniPath());
    QVERIFY2(contents.contains(QByteArray(
                 "\nsettingsVersion=" + QByteArray::number(SettingsRegistry::CurrentVersion) + '\n')),
             contents.constData());
    QVERIFY2(contents.contains("\nlistenPort=9001\n"), contents.constData());
}

// Regression: the version key used to be "general/settingsVersion", which QSettings' INI format writes
// as "[%General]" and reads back as "General/settingsVersion": a fresh read found no version. It is
// now "meta/settingsVersion".
void tst_SettingsRegistry::settingsVersionSurvivesAFreshRead()
{
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QVERIFY(registry->setValue(Setting::ListenPort, 9001));
        QVERIFY(registry->sync());
    }
    // Change the file's size so that QSettings re-reads it instead of using its in-process cache,
    // as a new KeyRelay process would.
    {
        QFile file(iniPath());
        QVERIFY(file.open(QIODevice::Append));
        file.write("\n");
    }
    const auto reader = SettingsRegistry::openIni(iniPath());
    QCOMPARE(reader->value(Setting::ListenPort).toInt(), 9001);
    QCOMPARE(reader->fileVersion(), SettingsRegistry::CurrentVersion);
}

void tst_SettingsRegistry::newerVersionInKeyRelaysOwnSpelling()
{
    // Exactly what KeyRelay writes, with a higher number.
    QVERIFY(writeFile(iniPath(), QByteArrayLiteral("[meta]\nsettingsVersion=99\n")));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QCOMPARE(registry->fileVersion(), 99);
    QVERIFY(problemsText(*registry).contains(QLatin1String("newer")));
}

void tst_SettingsRegistry::migratesWildcardCorsToDefaultPolicy()
{
    // Version 1's default, "*", must become the new default policy, not "allow any website".
    QVERIFY(writeFile(iniPath(),
                      QByteArrayLiteral("[meta]\nsettingsVersion=1\n[security]\ncorsAllowOrigin=*\n"
                                        "[proxy]\nlistenPort=9300\n")));
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QVERIFY2(registry->problems().isEmpty(), qPrintable(problemsText(*registry)));
        QCOMPARE(registry->fileVersion(), SettingsRegistry::CurrentVersion);
        QCOMPARE(registry->value(Setting::AllowAnyWebsite).toBool(), false);
        QVERIFY(registry->value(Setting::AllowedOrigins).toStringList().isEmpty());
        QCOMPARE(registry->value(Setting::ListenPort).toInt(), 9300);
        const ProxyConfig config = registry->proxyConfig();
        QVERIFY(!config.allowAnyWebsite);
    }
    QSettings file(iniPath(), QSettings::IniFormat);
    QVERIFY(!file.contains(QStringLiteral("security/corsAllowOrigin")));
    QCOMPARE(file.value(QStringLiteral("meta/settingsVersion")).toInt(), SettingsRegistry::CurrentVersion);
}

void tst_SettingsRegistry::migratesSpecificCorsOriginToAllowList()
{
    QVERIFY(writeFile(iniPath(), QByteArrayLiteral("[security]\ncorsAllowOrigin=https://bettergpt.chat\n")));
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QCOMPARE(registry->value(Setting::AllowedOrigins).toStringList(),
                 QStringList { QStringLiteral("https://bettergpt.chat") });
        QCOMPARE(registry->value(Setting::AllowAnyWebsite).toBool(), false);
    }
    const auto reread = SettingsRegistry::openIni(iniPath());
    QCOMPARE(reread->value(Setting::AllowedOrigins).toStringList(),
             QStringList { QStringLiteral("https://bettergpt.chat") });
    QCOMPARE(reread->fileVersion(), SettingsRegistry::CurrentVersion);
}

void tst_SettingsRegistry::newerVersionIsAProblem()
{
    // A newer version next to values this version understands.
    const QByteArray contents = QByteArrayLiteral("[meta]\nsettingsVersion=99\n[proxy]\nlistenPort=9200\n");
    QVERIFY(writeFile(iniPath(), contents));
    const auto registry = SettingsRegistry::openIni(iniPath());
    QCOMPARE(registry->fileVersion(), 99);
    const QString text = problemsText(*registry);
    QVERIFY2(text.contains(QLatin1String("newer")), qPrintable(text));
    QVERIFY2(text.contains(QLatin1String("99")), qPrintable(text));
    // The values it understands are still used, and the file is backed up.
    QCOMPARE(registry->value(Setting::ListenPort).toInt(), 9200);
    QCOMPARE(readFile(registry->damagedCopy()), contents);
}

void tst_SettingsRegistry::proxyConfigRoundTrip()
{
    ProxyConfig config;
    config.listenHost = QStringLiteral("0.0.0.0");
    config.listenPort = 8443;
    config.allowRemoteClients = true;
    config.upstream = QUrl(QStringLiteral("https://llm.example.org/api"));
    config.upstreamProxy = QStringLiteral("http://proxy.example:3128");
    config.reorderEnabled = false;
    config.reorderThreshold = 10;
    config.reorderDepth = 5;
    config.stripPrefixes = { QStringLiteral("/release"), QStringLiteral("/test") };
    config.connectTimeoutSec = 7;
    config.idleTimeoutSec = 120;
    config.maxBodyBytes = qint64(16) * 1024 * 1024;
    config.allowedOrigins = { QStringLiteral("https://ui.example") };
    config.clientToken = QStringLiteral("krt-abcdefghijklmnopqrstuvwxyz");
    config.allowedHosts = { QStringLiteral("api.example.test") };
    // Every other persisted field, each away from its default so that a field the mappers forget shows.
    config.allowAnyWebsite = true;
    config.headTimeoutSec = 21;
    config.maxConnections = 777;
    config.recheckInvalidSec = 42;
    config.recheckExhaustedSec = 4242;
    config.maxAttempts = 5;
    config.maxConcurrentPerKey = 6;
    config.requestStreamUsage = false;
    config.upstreamHttp2 = !ProxyConfig().upstreamHttp2;

    const auto check = [&config](const ProxyConfig &got) {
        QCOMPARE(got.listenHost, config.listenHost);
        QCOMPARE(got.listenPort, config.listenPort);
        QCOMPARE(got.allowRemoteClients, config.allowRemoteClients);
        QCOMPARE(got.upstream, config.upstream);
        QCOMPARE(got.upstreamProxy, config.upstreamProxy);
        QCOMPARE(got.reorderEnabled, config.reorderEnabled);
        QCOMPARE(got.reorderThreshold, config.reorderThreshold);
        QCOMPARE(got.reorderDepth, config.reorderDepth);
        QCOMPARE(got.stripPrefixes, config.stripPrefixes);
        QCOMPARE(got.connectTimeoutSec, config.connectTimeoutSec);
        QCOMPARE(got.idleTimeoutSec, config.idleTimeoutSec);
        QCOMPARE(got.maxBodyBytes, config.maxBodyBytes);
        QCOMPARE(got.allowedOrigins, config.allowedOrigins);
        QCOMPARE(got.allowAnyWebsite, config.allowAnyWebsite);
        QCOMPARE(got.clientToken, config.clientToken);
        QCOMPARE(got.allowedHosts, config.allowedHosts);
        QCOMPARE(got.headTimeoutSec, config.headTimeoutSec);
        QCOMPARE(got.maxConnections, config.maxConnections);
        QCOMPARE(got.recheckInvalidSec, config.recheckInvalidSec);
        QCOMPARE(got.recheckExhaustedSec, config.recheckExhaustedSec);
        QCOMPARE(got.maxAttempts, config.maxAttempts);
        QCOMPARE(got.maxConcurrentPerKey, config.maxConcurrentPerKey);
        QCOMPARE(got.requestStreamUsage, config.requestStreamUsage);
        QCOMPARE(got.upstreamHttp2, config.upstreamHttp2);
        QVERIFY(got.validate().isEmpty());
    };
    {
        const auto registry = SettingsRegistry::openIni(iniPath());
        QSignalSpy changed(registry.get(), &SettingsRegistry::changed);
        registry->setProxyConfig(config);
        // Every setting but the two ui/ ones belongs to ProxyConfig, and each differs from its default here.
        QCOMPARE(changed.count(), SettingCount - 2);
        check(registry->proxyConfig());
        if (QTest::currentTestFailed())
            return;
        registry->setProxyConfig(config);
        QCOMPARE(changed.count(), SettingCount - 2); // nothing changed the second time
    }
    const auto reader = SettingsRegistry::openIni(iniPath());
    QVERIFY2(reader->problems().isEmpty(), qPrintable(problemsText(*reader)));
    check(reader->proxyConfig());
}

void tst_SettingsRegistry::stripPrefixesStringForm()
{
    const auto registry = SettingsRegistry::openIni(iniPath());
    QVERIFY(registry->setValue(Setting::StripPrefixes, QStringLiteral("/release, /test/")));
    QCOMPARE(registry->value(Setting::StripPrefixes).toStringList(),
             (QStringList { QStringLiteral("/release"), QStringLiteral("/test") }));
    QVERIFY(registry->setValue(Setting::StripPrefixes, QStringLiteral("/a,,/b, ,")));
    QCOMPARE(registry->value(Setting::StripPrefixes).toStringList(),
             (QStringList { QStringLiteral("/a"), QStringLiteral("/b") }));
    QVERIFY(registry->setValue(Setting::StripPrefixes,
                               QStringList { QStringLiteral(" /x/ "), QString(), QStringLiteral("/") }));
    QCOMPARE(registry->value(Setting::StripPrefixes).toStringList(), QStringList { QStringLiteral("/x") });
    QVERIFY(!registry->setValue(Setting::StripPrefixes, QStringLiteral("a,b")));
    QVERIFY(!registry->setValue(Setting::StripPrefixes, QStringLiteral("/a,b")));
    QCOMPARE(registry->value(Setting::StripPrefixes).toStringList(), QStringList { QStringLiteral("/x") });
    QVERIFY(registry->setValue(Setting::StripPrefixes, QString()));
    QVERIFY(registry->value(Setting::StripPrefixes).toStringList().isEmpty());

    // The comma-separated form in a hand-written file.
    QVERIFY(writeFile(m_dir->filePath(QStringLiteral("hand.ini")),
                      QByteArrayLiteral("[proxy]\nstripPrefixes=/release, /test/\n")));
    const auto hand = SettingsRegistry::openIni(m_dir->filePath(QStringLiteral("hand.ini")));
    QVERIFY2(hand->problems().isEmpty(), qPrintable(problemsText(*hand)));
    QCOMPARE(hand->proxyConfig().stripPrefixes,
             (QStringList { QStringLiteral("/release"), QStringLiteral("/test") }));
}

// Regression: for int and bool settings the problem says 'using the default ""'
// because the default is formatted with QVariant::toStringList(), which is empty for an int or a bool.
void tst_SettingsRegistry::problemNamesTheDefault()
{
    QVERIFY(writeFile(iniPath(),
                      QByteArrayLiteral("[proxy]\nlistenPort=abc\n[security]\nallowRemoteClients=maybe\n")));
    const auto registry = SettingsRegistry::openIni(iniPath());
    const QString text = problemsText(*registry);
    QVERIFY2(text.contains(QLatin1String("default \"9000\"")), qPrintable(text));
    QVERIFY2(text.contains(QLatin1String("default \"false\"")), qPrintable(text));
}

QTEST_GUILESS_MAIN(tst_SettingsRegistry)
#include "tst_settingsregistry.moc"
