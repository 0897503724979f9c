// Desktop integration: tray icon, notification limits, single instance, autostart, icons.
#include "autostartmanager.h"
#include "icons.h"
#include "notificationlimiter.h"
#include "singleinstance.h"
#include "trayicon.h"

#include <QAction>
#include <QFile>
#include <QImage>
#include <QMenu>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QTranslator>

using namespace keyrelay;

class TestDesktop : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void notificationLimits()
    {
        NotificationLimiter limiter(10 * 60 * 1000, 30 * 1000);
        const QString keyA = QStringLiteral("key:a");
        const QString keyB = QStringLiteral("key:b");
        QVERIFY(limiter.allow(keyA, 0));
        QVERIFY(!limiter.allow(keyB, 1000)); // overall: one per 30 s
        QVERIFY(limiter.allow(keyB, 30000));
        QVERIFY(!limiter.allow(keyA, 60000)); // key a: one per 10 min
        QVERIFY(!limiter.allow(keyA, 599999));
        QVERIFY(limiter.allow(keyA, 600000));
        QVERIFY(!limiter.allow(QStringLiteral("proxy"), 600001));
    }

    void trayWithoutSystemTrayGivesUpAfterRetries()
    {
        if (QSystemTrayIcon::isSystemTrayAvailable())
            QSKIP("a system tray is available here");
        TrayIcon tray;
        QSignalSpy unavailable(&tray, &TrayIcon::unavailable);
        QSignalSpy ready(&tray, &TrayIcon::ready);
        tray.install(3, 20);
        QCOMPARE(unavailable.count(), 0); // it retries first
        QTRY_COMPARE(unavailable.count(), 1);
        QCOMPARE(ready.count(), 0);
        QVERIFY(!tray.isInstalled());
        QVERIFY(!tray.notify(QStringLiteral("x"), QStringLiteral("t"), QStringLiteral("m")));
    }

    void trayMenuAndToolTip()
    {
        TrayIcon tray;
        tray.setState(IndicatorState::Running, QStringLiteral("http://127.0.0.1:9000"), QString());
        tray.setRequestCount(42);
        QVERIFY(tray.systemTrayIcon()->toolTip().contains(QStringLiteral("http://127.0.0.1:9000")));
        QVERIFY(tray.systemTrayIcon()->toolTip().contains(QStringLiteral("42")));

        const QList<QAction *> actions = tray.menu()->actions();
        QStringList texts;
        for (QAction *action : actions) {
            if (!action->isSeparator())
                texts << action->text();
        }
        QCOMPARE(texts,
                 (QStringList { QStringLiteral("Open KeyRelay"), QStringLiteral("Stop proxy"),
                                QStringLiteral("Copy endpoint URL"), QStringLiteral("Quit KeyRelay") }));
        QSignalSpy stop(&tray, &TrayIcon::stopRequested);
        QSignalSpy start(&tray, &TrayIcon::startRequested);
        QSignalSpy show(&tray, &TrayIcon::showWindowRequested);
        QSignalSpy quit(&tray, &TrayIcon::quitRequested);
        QSignalSpy copy(&tray, &TrayIcon::copyEndpointRequested);
        for (QAction *action : actions)
            action->trigger();
        QCOMPARE(stop.count(), 1);
        QCOMPARE(start.count(), 0);
        QCOMPARE(show.count(), 1);
        QCOMPARE(quit.count(), 1);
        QCOMPARE(copy.count(), 1);

        tray.setState(IndicatorState::Error, QStringLiteral("http://127.0.0.1:9000"),
                      QStringLiteral("port in use"));
        QVERIFY(tray.systemTrayIcon()->toolTip().contains(QStringLiteral("port in use")));
        QCOMPARE(actions.at(2)->text(), QStringLiteral("Start proxy"));
        actions.at(2)->trigger();
        QCOMPARE(start.count(), 1);
        QVERIFY(!actions.at(3)->isEnabled()); // nothing to copy while not running
    }

    void trayRunningWithProblems()
    {
        TrayIcon tray;
        tray.setState(IndicatorState::Degraded, QStringLiteral("http://127.0.0.1:9000/v1"),
                      QStringLiteral("The upstream is failing"));
        const QString tip = tray.systemTrayIcon()->toolTip();
        QVERIFY2(tip.contains(QStringLiteral("with problems")), qPrintable(tip));
        QVERIFY(tip.contains(QStringLiteral("The upstream is failing")));
        QVERIFY(tip.contains(QStringLiteral("http://127.0.0.1:9000/v1")));
        const QList<QAction *> actions = tray.menu()->actions();
        QCOMPARE(actions.at(2)->text(), QStringLiteral("Stop proxy")); // still running
        QVERIFY(actions.at(3)->isEnabled());
        QSignalSpy stop(&tray, &TrayIcon::stopRequested);
        actions.at(2)->trigger();
        QCOMPARE(stop.count(), 1);
        const QImage degraded = tray.systemTrayIcon()->icon().pixmap(32, 32).toImage();
        QVERIFY(degraded != icons::stateIcon(IndicatorState::Running).pixmap(32, 32).toImage());
    }

    void threeDistinctStateIcons()
    {
        const QImage running = icons::stateIcon(IndicatorState::Running).pixmap(32, 32).toImage();
        const QImage stopped = icons::stateIcon(IndicatorState::Stopped).pixmap(32, 32).toImage();
        const QImage error = icons::stateIcon(IndicatorState::Error).pixmap(32, 32).toImage();
        QVERIFY(!running.isNull());
        QVERIFY(running != stopped);
        QVERIFY(running != error);
        QVERIFY(stopped != error);
        QVERIFY(!icons::appIcon().isNull());
    }

    void singleInstance()
    {
        QTemporaryDir dir;
        const QString key = dir.path(); // unique per test run
        SingleInstance first(key);
        QVERIFY(first.claim());
        QSignalSpy activation(&first, &SingleInstance::activationRequested);
        {
            SingleInstance second(key);
            QVERIFY(!second.claim());
        }
        QTRY_COMPARE(activation.count(), 1);

        SingleInstance other(key + QStringLiteral("-other"));
        QVERIFY(other.claim()); // a different user/config folder is independent
    }

    void chineseTranslationIsEmbeddedAndComplete()
    {
        QTranslator translator;
        QVERIFY(translator.load(QLocale(QLocale::Chinese, QLocale::China), QStringLiteral("keyrelay"),
                                QStringLiteral("_"), QStringLiteral(":/keyrelay/i18n")));
        QCOMPARE(translator.translate("keyrelay::TrayIcon", "Quit KeyRelay"),
                 QStringLiteral("退出 KeyRelay"));
        QCOMPARE(translator.translate("keyrelay::MainWindow", "&Settings"), QStringLiteral("设置(&S)"));

        QFile ts(QStringLiteral(QT_TESTCASE_SOURCEDIR "/../../resources/translations/keyrelay_zh_CN.ts"));
        QVERIFY(ts.open(QIODevice::ReadOnly));
        const QByteArray content = ts.readAll();
        QVERIFY(content.count("<message") > 100);
        QCOMPARE(content.count("type=\"unfinished\""), 0);
    }

    void autostartFollowsXdgConfigHome()
    {
        QTemporaryDir dir;
        qputenv("XDG_CONFIG_HOME", dir.path().toUtf8());
        XdgAutostartManager autostart(QStringLiteral("/opt/Key Relay/keyrelay"));
        QCOMPARE(XdgAutostartManager::entryPath(),
                 dir.filePath(QStringLiteral("autostart/keyrelay.desktop")));
        QVERIFY(!autostart.isEnabled());
        QString error;
        QVERIFY(autostart.setEnabled(true, &error));
        QVERIFY(autostart.isEnabled());
        QFile file(XdgAutostartManager::entryPath());
        QVERIFY(file.open(QIODevice::ReadOnly));
        const QByteArray content = file.readAll();
        QVERIFY(content.startsWith("[Desktop Entry]\n"));
        QVERIFY(content.contains("Exec=\"/opt/Key Relay/keyrelay\"\n"));
        QVERIFY(autostart.setEnabled(false, &error));
        QVERIFY(!autostart.isEnabled());
        QVERIFY(autostart.setEnabled(false, &error)); // idempotent
        qunsetenv("XDG_CONFIG_HOME");
    }
};

QTEST_MAIN(TestDesktop)
#include "tst_desktop.moc"
