// One configuration for the tray app and the service (issue #9), on the real binary (KEYRELAY_BINARY) with
// XDG_CONFIG_HOME and XDG_RUNTIME_DIR in a temporary folder: `keyrelay --headless` without
// --config/--keys-file serves with the tray app's settings and keys, flags override them, the tray app and
// the service refuse to run at once with a clear message, and the tray app without a display says what to do
// instead of aborting.
#include "keystore.h"
#include "mockupstream.h"
#include "rawclient.h"

#include <QDir>
#include <QProcess>
#include <QRegularExpression>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QtTest>

#include <csignal>

using namespace it;
using keyrelay::FileKeyStore;

namespace {
const QString StoreKey = QStringLiteral("sk-tray-store-secret-key-5555abcd");
const QString FileKey = QStringLiteral("sk-keys-file-secret-key-6666wxyz");

/// Stops a process that is still running at the end of a test (SIGTERM, then kill).
void stopProcess(QProcess &process)
{
    if (process.state() == QProcess::NotRunning)
        return;
    process.terminate();
    if (!process.waitForFinished(10000)) {
        process.kill();
        process.waitForFinished(5000);
    }
}

/// A port that was free a moment ago.
quint16 freePort()
{
    QTcpServer server;
    return server.listen(QHostAddress(QHostAddress::LocalHost), 0) ? server.serverPort() : 0;
}
} // namespace

class OneConfigTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    void headlessUsesTrayAppSettingsAndKeys();
    void flagsOverrideSettingsAndKeys();
    void damagedKeyStoreStopsHeadless();
    void secondHeadlessRefused();
    void trayAppRefusedWhileServiceRuns();
    void serviceRefusedWhileTrayAppRuns();
    void noDisplay_data();
    void noDisplay();

private:
    QProcessEnvironment environment(const QString &platform = QStringLiteral("offscreen")) const;
    QString settingsFile() const { return m_dir->filePath(QStringLiteral("config/KeyRelay/KeyRelay.ini")); }
    void writeSettings(const QByteArray &content);
    void writeStoreKey();
    /// Starts `keyrelay --headless args` and waits for its "listening on" line; returns the port or 0.
    quint16 startHeadless(QProcess &process, const QStringList &args);
    /// Runs the binary to its end; returns the exit code (negative if it crashed or hung).
    int runToExit(const QStringList &args, const QProcessEnvironment &env, QByteArray *err);

    QString m_binary;
    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<MockUpstream> m_mock;
};

void OneConfigTest::initTestCase()
{
    m_binary = QString::fromLocal8Bit(qgetenv("KEYRELAY_BINARY"));
    QVERIFY2(!m_binary.isEmpty(), "KEYRELAY_BINARY is not set (run through ctest)");
}

void OneConfigTest::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    const QString runtime = m_dir->filePath(QStringLiteral("run"));
    QVERIFY(QDir().mkpath(runtime));
    QFile::setPermissions(runtime, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
    QVERIFY(QDir().mkpath(QFileInfo(settingsFile()).absolutePath()));
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
}

void OneConfigTest::cleanup()
{
    m_mock.reset();
    m_dir.reset();
}

QProcessEnvironment OneConfigTest::environment(const QString &platform) const
{
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("HOME"), m_dir->path());
    env.insert(QStringLiteral("XDG_CONFIG_HOME"), m_dir->filePath(QStringLiteral("config")));
    env.insert(QStringLiteral("XDG_RUNTIME_DIR"), m_dir->filePath(QStringLiteral("run")));
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), platform);
    env.insert(QStringLiteral("QT_LOGGING_RULES"), QStringLiteral("keyrelay.*.info=true"));
    env.insert(QStringLiteral("KEYRELAY_KEYSTORE"), QStringLiteral("file")); // never the tester's keychain
    return env;
}

void OneConfigTest::writeSettings(const QByteArray &content)
{
    QFile file(settingsFile());
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(content);
}

void OneConfigTest::writeStoreKey()
{
    FileKeyStore store(FileKeyStore::pathNextTo(settingsFile()));
    QString error;
    QVERIFY2(store.save({ { StoreKey, QStringLiteral("tray key"), true } }, &error), qPrintable(error));
}

quint16 OneConfigTest::startHeadless(QProcess &process, const QStringList &args)
{
    QByteArray out;
    connect(&process, &QProcess::readyReadStandardOutput, this,
            [&process, &out] { out += process.readAllStandardOutput(); });
    process.setProcessEnvironment(environment());
    process.start(m_binary, QStringList { QStringLiteral("--headless") } + args);
    if (!process.waitForStarted(10000))
        return 0;
    static const QRegularExpression listening(
        QStringLiteral("listening on http://127\\.0\\.0\\.1:(\\d+) -> "));
    quint16 port = 0;
    [[maybe_unused]] const bool seen = QTest::qWaitFor(
        [&] {
            const QRegularExpressionMatch match = listening.match(QString::fromUtf8(out));
            if (match.hasMatch())
                port = quint16(match.captured(1).toUInt());
            return port != 0 || process.state() == QProcess::NotRunning;
        },
        15000);
    disconnect(&process, &QProcess::readyReadStandardOutput, this, nullptr);
    if (!port)
        qWarning() << "no listening line; stdout:" << out << "stderr:" << process.readAllStandardError();
    return port;
}

int OneConfigTest::runToExit(const QStringList &args, const QProcessEnvironment &env, QByteArray *err)
{
    QProcess process;
    process.setProcessEnvironment(env);
    process.start(m_binary, args);
    if (!process.waitForFinished(20000)) {
        process.kill();
        process.waitForFinished();
        return -1000;
    }
    *err = process.readAllStandardError();
    return process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -2000;
}

void OneConfigTest::headlessUsesTrayAppSettingsAndKeys()
{
    writeSettings("[proxy]\nlistenPort=0\nupstream=" + m_mock->url().toEncoded()
                  + "\n[rewrite]\nreorderSystemMessage=false\n");
    writeStoreKey();
    QProcess process;
    const quint16 port = startHeadless(process, {});
    QVERIFY(port != 0);

    RawClient client;
    client.send(
        port, buildRequest("GET", "/v1/models", port, { { "Authorization", "Bearer sk-client-not-used" } }));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QCOMPARE(m_mock->requests().size(), 1); // the upstream comes from the settings file
    QCOMPARE(m_mock->lastRequest().header("Authorization"),
             "Bearer " + StoreKey.toUtf8()); // and the key store
    ::kill(pid_t(process.processId()), SIGTERM);
    QVERIFY(process.waitForFinished(10000));
    QCOMPARE(process.exitCode(), 0);
    QVERIFY(!process.readAllStandardError().contains(StoreKey.toUtf8()));
}

void OneConfigTest::flagsOverrideSettingsAndKeys()
{
    MockUpstream other;
    QVERIFY(other.listen());
    writeSettings("[proxy]\nlistenPort=0\nupstream=" + m_mock->url().toEncoded() + "\n");
    writeStoreKey();
    const QString keysFile = m_dir->filePath(QStringLiteral("keys.txt"));
    {
        QFile file(keysFile);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write(FileKey.toUtf8() + "\n");
    }
    QProcess process;
    const quint16 port = startHeadless(
        process,
        { QStringLiteral("--upstream"), other.url().toString(), QStringLiteral("--keys-file"), keysFile });
    QVERIFY(port != 0);
    RawClient client;
    client.send(port, buildRequest("GET", "/v1/models", port));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QCOMPARE(m_mock->requests().size(), 0);
    QCOMPARE(other.requests().size(), 1);
    QCOMPARE(other.lastRequest().header("Authorization"), "Bearer " + FileKey.toUtf8());
    stopProcess(process);
}

void OneConfigTest::damagedKeyStoreStopsHeadless()
{
    // Better no proxy than one that silently passes clients' keys through instead of the user's.
    writeSettings("[proxy]\nlistenPort=0\nupstream=" + m_mock->url().toEncoded() + "\n");
    QFile store(FileKeyStore::pathNextTo(settingsFile()));
    QVERIFY(store.open(QIODevice::WriteOnly));
    store.write("{ not json");
    store.close();
    QByteArray err;
    const int code = runToExit({ QStringLiteral("--headless") }, environment(), &err);
    QCOMPARE(code, 1);
    const QString message = QString::fromUtf8(err).trimmed();
    QVERIFY2(message.startsWith(QStringLiteral("keyrelay: ")), qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("keys.json")), qPrintable(message));
    QCOMPARE(m_mock->totalConnections(), 0);
}

void OneConfigTest::secondHeadlessRefused()
{
    writeSettings("[proxy]\nlistenPort=0\nupstream=" + m_mock->url().toEncoded() + "\n");
    QProcess first;
    QVERIFY(startHeadless(first, {}) != 0);
    QByteArray err;
    const int code = runToExit({ QStringLiteral("--headless") }, environment(), &err);
    QCOMPARE(code, 1);
    const QString message = QString::fromUtf8(err).trimmed();
    QVERIFY2(message.contains(QStringLiteral("already runs")), qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("pid %1").arg(first.processId())), qPrintable(message));
    QCOMPARE(message.count(QLatin1Char('\n')), 0);
    QCOMPARE(first.state(), QProcess::Running);
    stopProcess(first);
}

void OneConfigTest::trayAppRefusedWhileServiceRuns()
{
    writeSettings("[proxy]\nlistenPort=0\nupstream=" + m_mock->url().toEncoded() + "\n");
    QProcess service;
    QVERIFY(startHeadless(service, {}) != 0);
    QByteArray err;
    const int code = runToExit({}, environment(), &err); // the tray app, offscreen
    QCOMPARE(code, 1);
    QVERIFY2(err.contains("already runs in the background"), err.constData());
    QVERIFY2(err.contains("systemctl --user stop keyrelay"), err.constData());
    QCOMPARE(service.state(), QProcess::Running);
    stopProcess(service);
}

void OneConfigTest::serviceRefusedWhileTrayAppRuns()
{
    const quint16 port = freePort();
    QVERIFY(port != 0);
    writeSettings("[proxy]\nlistenPort=" + QByteArray::number(port)
                  + "\nupstream=" + m_mock->url().toEncoded() + "\n[ui]\nstartMinimized=true\n");
    QProcess tray;
    tray.setProcessEnvironment(environment());
    tray.setProcessChannelMode(QProcess::MergedChannels);
    tray.start(m_binary, {});
    QVERIFY(tray.waitForStarted(10000));
    QByteArray trayOutput;
    QTRY_VERIFY_WITH_TIMEOUT((trayOutput += tray.readAll()).contains("listening on"), 15000);

    QByteArray err;
    const int code = runToExit({ QStringLiteral("--headless") }, environment(), &err);
    QCOMPARE(code, 1);
    const QString message = QString::fromUtf8(err).trimmed();
    QVERIFY2(message.contains(QStringLiteral("already runs with the settings in %1").arg(settingsFile())),
             qPrintable(message));
    QCOMPARE(message.count(QLatin1Char('\n')), 0);
    QCOMPARE(tray.state(), QProcess::Running);
    stopProcess(tray);
}

void OneConfigTest::noDisplay_data()
{
    QTest::addColumn<QString>("platform");
    QTest::newRow("QT_QPA_PLATFORM unset") << QString();
    QTest::newRow("xcb without DISPLAY") << QStringLiteral("xcb");
    QTest::newRow("wayland without WAYLAND_DISPLAY") << QStringLiteral("wayland");
}

void OneConfigTest::noDisplay()
{
    QFETCH(QString, platform);
    QProcessEnvironment env = environment();
    env.remove(QStringLiteral("DISPLAY"));
    env.remove(QStringLiteral("WAYLAND_DISPLAY"));
    env.remove(QStringLiteral("QT_QPA_PLATFORM"));
    if (!platform.isEmpty())
        env.insert(QStringLiteral("QT_QPA_PLATFORM"), platform);
    QByteArray err;
    const int code = runToExit({}, env, &err);
    QCOMPARE(code, 1); // not Qt's abort (134)
    const QString message = QString::fromUtf8(err).trimmed();
    QVERIFY2(message.startsWith(QStringLiteral("keyrelay: no graphical display")), qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("keyrelay --headless")), qPrintable(message));
    QCOMPARE(message.count(QLatin1Char('\n')), 0); // one line
    QVERIFY(!QFile::exists(settingsFile())); // nothing was started or written
}

QTEST_GUILESS_MAIN(OneConfigTest)
#include "tst_it_oneconfig.moc"
