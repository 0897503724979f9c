// The notice banner (issue 15): every ignored setting listed with its line, the value found and the value
// kept, dismissible; and the storage warnings: where the keys really are, keys in memory only.
#include "keypool.h"
#include "keyspage.h"
#include "mainwindow.h"
#include "noticebanner.h"
#include "proxyservice.h"
#include "settingsregistry.h"
#include "storagewarnings.h"
#include "verifiedstores.h"

#include <QFile>
#include <QLayout>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QTest>

using namespace keyrelay;

class TestNoticeBanner : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void ignoredSettingsAreListed()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("KeyRelay.ini"));
        {
            QFile file(path);
            QVERIFY(file.open(QIODevice::WriteOnly));
            file.write("[proxy]\nupstream=https://api.openai.com\nlistenPort=abc\n"
                       "[security]\nallowRemoteClients=maybe\nclientToken=short-secret\n");
        }
        const auto settings = SettingsRegistry::openIni(path);
        NoticeBanner banner;
        banner.showSettingsProblems(*settings);
        banner.show();
        QVERIFY(QTest::qWaitForWindowExposed(&banner));
        QVERIFY(banner.hasNotice(NoticeBanner::settingsProblemsId()));
        const QString text = banner.noticeText(NoticeBanner::settingsProblemsId());
        QVERIFY2(text.contains(QLatin1String("Line 3: proxy/listenPort = \"abc\"")), qPrintable(text));
        QVERIFY2(text.contains(QLatin1String("uses 9000 instead")), qPrintable(text));
        QVERIFY2(text.contains(QLatin1String("Line 5: security/allowRemoteClients = \"maybe\"")),
                 qPrintable(text));
        QVERIFY2(text.contains(QLatin1String("uses false instead")), qPrintable(text));
        QVERIFY2(text.contains(QLatin1String("Line 6: security/clientToken")), qPrintable(text));
        QVERIFY2(!text.contains(QLatin1String("short-secret")), qPrintable(text)); // never the token
        QVERIFY2(text.contains(settings->damagedCopy()), qPrintable(text));

        // Dismissible.
        QSignalSpy dismissed(&banner, &NoticeBanner::dismissed);
        auto *button = banner.findChild<QPushButton *>(QStringLiteral("dismiss"));
        QVERIFY(button);
        QTest::mouseClick(button, Qt::LeftButton);
        QCOMPARE(dismissed.size(), 1);
        QVERIFY(!banner.hasNotice(NoticeBanner::settingsProblemsId()));
        QVERIFY(banner.isHidden());
    }

    void goodSettingsShowNothing()
    {
        QTemporaryDir dir;
        const auto settings = SettingsRegistry::openIni(dir.filePath(QStringLiteral("KeyRelay.ini")));
        NoticeBanner banner;
        banner.showSettingsProblems(*settings);
        QVERIFY(banner.noticeIds().isEmpty());
        QVERIFY(banner.isHidden());
    }

    void bannerSitsAboveThePages()
    {
        QTemporaryDir dir;
        const auto settings = SettingsRegistry::openIni(dir.filePath(QStringLiteral("KeyRelay.ini")));
        KeyPool pool;
        ProxyService service(&pool);
        MainWindow window(settings.get(), &pool, nullptr, &service, nullptr);
        auto *banner = new NoticeBanner;
        window.addBanner(banner);
        QCOMPARE(banner->window(), &window);
        QLayout *layout = window.centralWidget()->layout();
        QCOMPARE(layout->indexOf(banner), 1); // under the status line
        QCOMPARE(layout->indexOf(window.tabs()), 2);
    }

    void keysInMemoryOnlyStayUntilSaved()
    {
        KeyPool pool;
        KeysPage page(&pool, nullptr, nullptr);
        NoticeBanner banner;
        StorageEvents events;
        StorageWarnings warnings(&events, &banner, &page);
        const QString start
            = QStringLiteral("Keys are stored in the system keychain, never in the settings file.");
        warnings.setStartNotice(start);
        QCOMPARE(page.storageNotice(), start);

        Q_EMIT events.keysNotSaved(QStringLiteral("cannot write the keys file /x/keys.json: disk full"));
        QVERIFY(banner.hasNotice(StorageWarnings::keysUnsavedId()));
        QVERIFY(banner.noticeText(StorageWarnings::keysUnsavedId()).contains(QLatin1String("disk full")));
        QVERIFY(!banner.findChild<QPushButton *>(QStringLiteral("dismiss"))); // cannot be waved away
        QVERIFY(page.storageNotice().contains(QLatin1String("in memory only")));

        Q_EMIT events.keysSaved(QStringLiteral("/x/keys.json"));
        QVERIFY(!banner.hasNotice(StorageWarnings::keysUnsavedId()));
        QCOMPARE(page.storageNotice(), start);
    }

    void fallbackIsSaidOnceAndTheFooterTellsWhere()
    {
        KeyPool pool;
        KeysPage page(&pool, nullptr, nullptr);
        NoticeBanner banner;
        StorageEvents events;
        StorageWarnings warnings(&events, &banner, &page);
        warnings.setStartNotice(QStringLiteral("Keys are stored in the system keychain."));
        QSignalSpy announced(&warnings, &StorageWarnings::announce);
        const QString why
            = QStringLiteral("Object does not exist at path “/org/freedesktop/secrets/collection/login”");
        Q_EMIT events.fellBack(StorageEvents::What::Keys, why,
                               QStringLiteral("/home/u/.config/KeyRelay/keys.json"));
        QCOMPARE(announced.size(), 1);
        QVERIFY(
            announced.first().at(1).toString().contains(QLatin1String("/home/u/.config/KeyRelay/keys.json")));
        QVERIFY(page.storageNotice().contains(QLatin1String("/home/u/.config/KeyRelay/keys.json")));
        QVERIFY(page.storageNotice().contains(why));
        QVERIFY(!page.storageNotice().contains(QLatin1String("Keys are stored in the system keychain")));
        // Said once in the window too, until dismissed.
        QVERIFY(banner.hasNotice(StorageWarnings::keysFallbackId()));
        QVERIFY(banner.noticeText(StorageWarnings::keysFallbackId()).contains(why));
        QVERIFY(banner.findChild<QPushButton *>(QStringLiteral("dismiss")));
        // Later saves keep the footer on the file.
        Q_EMIT events.keysSaved(QStringLiteral("/home/u/.config/KeyRelay/keys.json"));
        QVERIFY(page.storageNotice().contains(QLatin1String("/home/u/.config/KeyRelay/keys.json")));

        Q_EMIT events.fellBack(StorageEvents::What::Secrets, why,
                               QStringLiteral("/home/u/.config/KeyRelay/secrets.json"));
        QCOMPARE(announced.size(), 2);
        QVERIFY(announced.last().at(1).toString().contains(QLatin1String("proxy password")));
        QVERIFY(banner.hasNotice(StorageWarnings::secretsFallbackId()));
    }
};

QTEST_MAIN(TestNoticeBanner)
#include "tst_noticebanner.moc"
