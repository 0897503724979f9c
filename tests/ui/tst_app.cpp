// The real `keyrelay` binary in GUI mode (offscreen): single instance, damaged files never crash it.
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

class TestApp : public QObject
{
    Q_OBJECT
private:
    QProcessEnvironment environmentFor(const QTemporaryDir &dir)
    {
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("HOME"), dir.path());
        env.insert(QStringLiteral("XDG_CONFIG_HOME"), dir.filePath(QStringLiteral("config")));
        env.insert(QStringLiteral("XDG_RUNTIME_DIR"), dir.filePath(QStringLiteral("run")));
        env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
        env.insert(QStringLiteral("QT_LOGGING_RULES"), QStringLiteral("keyrelay.*.info=true"));
        return env;
    }

    /// Runs the app until it listens, then stops it; returns everything it printed.
    QByteArray runUntilListening(const QProcessEnvironment &env)
    {
        QProcess app;
        app.setProcessEnvironment(env);
        app.setProcessChannelMode(QProcess::MergedChannels);
        app.start(qEnvironmentVariable("KEYRELAY_BINARY"), {});
        if (!app.waitForStarted())
            return QByteArray("could not start the app");
        QByteArray output;
        if (!QTest::qWaitFor([&] { return (output += app.readAll()).contains("listening on"); }, 15000))
            output += "\n(the app did not listen within 15 s)";
        app.terminate();
        if (!app.waitForFinished(5000)) {
            app.kill();
            app.waitForFinished();
        }
        return output + app.readAll();
    }

    void writeFile(const QString &path, const QByteArray &content)
    {
        QDir().mkpath(QFileInfo(path).absolutePath());
        QFile file(path);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write(content);
    }

private Q_SLOTS:
    void initTestCase()
    {
        if (qEnvironmentVariableIsEmpty("KEYRELAY_BINARY"))
            QSKIP("KEYRELAY_BINARY is not set");
    }

    void secondLaunchWakesTheFirstAndExits()
    {
        QTemporaryDir dir;
        QVERIFY(QDir().mkpath(dir.filePath(QStringLiteral("run"))));
        QFile::setPermissions(dir.filePath(QStringLiteral("run")),
                              QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
        // Port 0 (any free port) and damaged files: the app must still come up.
        writeFile(dir.filePath(QStringLiteral("config/KeyRelay/KeyRelay.ini")),
                  "[proxy]\nlistenPort=0\nupstream=not a url\n");
        writeFile(dir.filePath(QStringLiteral("config/KeyRelay/keys.json")), "{ this is not json");

        QProcess first;
        first.setProcessEnvironment(environmentFor(dir));
        first.setProcessChannelMode(QProcess::MergedChannels);
        first.start(qEnvironmentVariable("KEYRELAY_BINARY"), {});
        QVERIFY(first.waitForStarted());
        QByteArray output;
        QTRY_VERIFY_WITH_TIMEOUT((output += first.readAll()).contains("listening on"), 15000);
        QCOMPARE(first.state(), QProcess::Running);

        QProcess second;
        second.setProcessEnvironment(environmentFor(dir));
        second.setProcessChannelMode(QProcess::MergedChannels);
        second.start(qEnvironmentVariable("KEYRELAY_BINARY"), {});
        QVERIFY(second.waitForFinished(15000));
        QCOMPARE(second.exitStatus(), QProcess::NormalExit);
        QCOMPARE(second.exitCode(), 0);
        QVERIFY(second.readAll().contains("already runs"));
        QCOMPARE(first.state(), QProcess::Running);

        // The damaged key file was kept aside, not silently lost.
        QVERIFY(QFile::exists(dir.filePath(QStringLiteral("config/KeyRelay/keys.json.damaged"))));

        first.terminate();
        if (!first.waitForFinished(5000)) {
            first.kill();
            first.waitForFinished();
        }
    }

    void keysMoveIntoTheKeychain()
    {
        if (qgetenv("KEYRELAY_KEYCHAIN_TEST") != "keyring")
            QSKIP(
                "needs a Secret Service: CTest runs this as tst_ui_app_keyring, in a private D-Bus session");
        QTemporaryDir dir;
        QVERIFY(QDir().mkpath(dir.filePath(QStringLiteral("run"))));
        QFile::setPermissions(dir.filePath(QStringLiteral("run")),
                              QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
        const QByteArray key = "sk-proj-KeychainAppKeyKeychainAppKey0001";
        const QByteArray password = "keychain-app-proxy-password";
        const QString settingsFile = dir.filePath(QStringLiteral("config/KeyRelay/KeyRelay.ini"));
        const QString keysFile = dir.filePath(QStringLiteral("config/KeyRelay/keys.json"));
        writeFile(settingsFile,
                  "[meta]\nsettingsVersion=1\n[proxy]\nlistenPort=0\nupstreamProxy=\"http://me:" + password
                      + "@127.0.0.1:3128\"\n");
        writeFile(keysFile, "{\"version\":1,\"keys\":[{\"secret\":\"" + key + "\",\"label\":\"a\"}]}");
        QProcessEnvironment env = environmentFor(dir);
        env.remove(QStringLiteral("KEYRELAY_KEYSTORE"));

        // First start: the keys and the proxy password move into the keychain.
        QByteArray output = runUntilListening(env);
        QVERIFY2(output.contains("Moved 1 key(s) from"), output.constData());
        QVERIFY(!QFile::exists(keysFile));
        QFile settings(settingsFile);
        QVERIFY(settings.open(QIODevice::ReadOnly));
        const QByteArray settingsText = settings.readAll();
        QVERIFY(settingsText.contains("http://me@127.0.0.1:3128"));
        QVERIFY(!settingsText.contains(password));
        QVERIFY(!QFile::exists(dir.filePath(QStringLiteral("config/KeyRelay/secrets.json"))));

        // Second start: the key comes back from the keychain.
        output += runUntilListening(env);
        QVERIFY2(output.contains("loaded 1 key(s) from the system keychain"), output.constData());
        QVERIFY(!QFile::exists(keysFile));
        QVERIFY(!output.contains(key));
        QVERIFY(!output.contains(password));
    }

    void withoutKeychainSecretsStayInOwnerOnlyFiles()
    {
        QTemporaryDir dir;
        QVERIFY(QDir().mkpath(dir.filePath(QStringLiteral("run"))));
        QFile::setPermissions(dir.filePath(QStringLiteral("run")),
                              QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
        const QByteArray key = "sk-proj-AppKeyAppKeyAppKeyAppKey0000001";
        const QByteArray password = "app-proxy-password-0001";
        const QString settingsFile = dir.filePath(QStringLiteral("config/KeyRelay/KeyRelay.ini"));
        const QString keysFile = dir.filePath(QStringLiteral("config/KeyRelay/keys.json"));
        // Written by an older KeyRelay: the upstream proxy's password inside the settings file.
        writeFile(settingsFile,
                  "[meta]\nsettingsVersion=1\n[proxy]\nlistenPort=0\nupstreamProxy=\"http://me:" + password
                      + "@127.0.0.1:3128\"\n");
        writeFile(keysFile, "{\"version\":1,\"keys\":[{\"secret\":\"" + key + "\",\"label\":\"a\"}]}");

        QProcessEnvironment env = environmentFor(dir);
        env.remove(QStringLiteral("KEYRELAY_KEYSTORE"));
        env.remove(QStringLiteral("DISPLAY"));
        env.insert(QStringLiteral("DBUS_SESSION_BUS_ADDRESS"),
                   QStringLiteral("unix:path=/nonexistent/keyrelay-bus"));
        QProcess app;
        app.setProcessEnvironment(env);
        app.setProcessChannelMode(QProcess::MergedChannels);
        app.start(qEnvironmentVariable("KEYRELAY_BINARY"), {});
        QVERIFY(app.waitForStarted());
        QByteArray output;
        QTRY_VERIFY_WITH_TIMEOUT((output += app.readAll()).contains("listening on"), 15000);
        app.terminate();
        if (!app.waitForFinished(5000)) {
            app.kill();
            app.waitForFinished();
        }
        output += app.readAll();

        QVERIFY2(output.contains("No system keychain (Secret Service) is available"), output.constData());
        QVERIFY(output.contains(keysFile.toUtf8()));
        QVERIFY(QFile::exists(keysFile)); // no keychain: the keys stay where they were
        QFile settings(settingsFile);
        QVERIFY(settings.open(QIODevice::ReadOnly));
        const QByteArray settingsText = settings.readAll();
        QVERIFY(settingsText.contains("http://me@127.0.0.1:3128"));
        QVERIFY(!settingsText.contains(password));
        const QString secretsFile = dir.filePath(QStringLiteral("config/KeyRelay/secrets.json"));
        QVERIFY(QFile::exists(secretsFile));
        QCOMPARE(QFile::permissions(secretsFile) & (QFile::ReadGroup | QFile::ReadOther),
                 QFile::Permissions());
        QVERIFY(!output.contains(key));
        QVERIFY(!output.contains(password));
    }
};

QTEST_GUILESS_MAIN(TestApp)
#include "tst_app.moc"
