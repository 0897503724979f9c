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
};

QTEST_GUILESS_MAIN(TestApp)
#include "tst_app.moc"
