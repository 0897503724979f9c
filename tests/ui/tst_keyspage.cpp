// The Keys page: pasting, masking, enabling, testing, persistence.
#include "keyspage.h"
#include "keystore.h"
#include "keytablemodel.h"
#include "keytester.h"
#include "mockupstream.h"
#include "proxyclient.h"
#include "proxyservice.h"
#include "usagestore.h"
#include "userstores.h"

#include <QFrame>
#include <QItemSelectionModel>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollBar>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableView>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>
#include <QTranslator>

using namespace keyrelay;

namespace {
QStringList secretsOf(const KeyPool &pool)
{
    QStringList result;
    const QList<ApiKey> keys = pool.keys();
    for (const ApiKey &key : keys)
        result << key.secret;
    return result;
}

void compareKeys(const QList<ApiKey> &actual, const QList<ApiKey> &expected)
{
    QCOMPARE(actual.size(), expected.size());
    for (int i = 0; i < expected.size(); ++i) {
        QCOMPARE(actual.at(i).secret, expected.at(i).secret);
        QCOMPARE(actual.at(i).label, expected.at(i).label);
        QCOMPARE(actual.at(i).enabled, expected.at(i).enabled);
    }
}

const QString KeyA = QStringLiteral("sk-proj-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAaaaa");
const QString KeyB = QStringLiteral("sk-proj-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBbbbb");
const QString KeyC = QStringLiteral("sk-proj-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCcccc");
} // namespace

class TestKeysPage : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void storageNoticeSaysWhereAndWhy()
    {
        KeyPool pool;
        QTemporaryDir dir;
        FileKeyStore store(dir.filePath(QStringLiteral("keys.json")));
        KeysPage page(&pool, &store, nullptr);
        QVERIFY(page.storageNotice().contains(store.location()));

        UserStores stores;
        stores.keysFile = store.location();
        stores.reason = UserStores::Reason::NoKeychain;
        stores.detail = QStringLiteral("Could not connect: No such file or directory");
        const QString fallback = KeysPage::storageNoticeFor(stores);
        QVERIFY(fallback.contains(QLatin1String("No system keychain")));
        QVERIFY(fallback.contains(stores.keysFile));
        QVERIFY(fallback.contains(stores.detail));
        page.setStorageNotice(fallback);
        QCOMPARE(page.storageNotice(), fallback);

        stores.reason = UserStores::Reason::MigrationFailed;
        QVERIFY(KeysPage::storageNoticeFor(stores).contains(stores.keysFile));
        stores.reason = UserStores::Reason::ForcedFile;
        QVERIFY(KeysPage::storageNoticeFor(stores).contains(QLatin1String("KEYRELAY_KEYSTORE=file")));
        stores.reason = UserStores::Reason::Keychain;
        QVERIFY(KeysPage::storageNoticeFor(stores).contains(QLatin1String("system keychain")));
        QVERIFY(!KeysPage::storageNoticeFor(stores).contains(stores.keysFile));
    }

    void pasteForms_data()
    {
        QTest::addColumn<QString>("existing");
        QTest::addColumn<QString>("pasted");
        QTest::addColumn<QStringList>("expected");
        QTest::newRow("lines") << QString() << KeyA + QStringLiteral("\n") + KeyB + QStringLiteral("\n")
                               << QStringList { KeyA, KeyB };
        QTest::newRow("crlf and blank lines")
            << QString() << QStringLiteral("\r\n") + KeyA + QStringLiteral("\r\n\r\n") + KeyB
            << QStringList { KeyA, KeyB };
        QTest::newRow("commas") << QString()
                                << KeyA + QStringLiteral(",") + KeyB + QStringLiteral(", ") + KeyC
                                << QStringList { KeyA, KeyB, KeyC };
        QTest::newRow("pipes") << QString() << KeyA + QStringLiteral("|") + KeyB + QStringLiteral("|") + KeyC
                               << QStringList { KeyA, KeyB, KeyC };
        QTest::newRow("whitespace") << QString()
                                    << QStringLiteral("   ") + KeyA + QStringLiteral("\t \n  ") + KeyB
                + QStringLiteral("  ")
                                    << QStringList { KeyA, KeyB };
        QTest::newRow("duplicates in paste")
            << QString() << KeyA + QStringLiteral("\n") + KeyA + QStringLiteral(",") + KeyB
            << QStringList { KeyA, KeyB };
        QTest::newRow("already present")
            << KeyA << KeyB + QStringLiteral("\n") + KeyA << QStringList { KeyA, KeyB };
        QTest::newRow("comments") << QString() << QStringLiteral("# my keys\n") + KeyC
                                  << QStringList { KeyC };
    }

    void pasteForms()
    {
        QFETCH(QString, existing);
        QFETCH(QString, pasted);
        QFETCH(QStringList, expected);
        QTemporaryDir dir;
        KeyPool pool;
        if (!existing.isEmpty())
            pool.setKeys({ { existing, QString(), true } });
        FileKeyStore store(dir.filePath(QStringLiteral("keys.json")));
        KeysPage page(&pool, &store, nullptr);
        QCOMPARE(page.emptyHint()->isVisibleTo(&page), existing.isEmpty());
        page.pasteBox()->setPlainText(pasted);
        QVERIFY(page.addButton()->isEnabled());
        QTest::mouseClick(page.addButton(), Qt::LeftButton);
        QCOMPARE(secretsOf(pool), expected);
        QVERIFY(!page.emptyHint()->isVisibleTo(&page)); // the pass-through hint goes once there are keys
        QCOMPARE(page.model()->rowCount(), expected.size());
        QVERIFY(page.pasteBox()->toPlainText().isEmpty()); // the pasted keys do not linger on screen
        // ...and they were persisted.
        QList<ApiKey> saved;
        QString error;
        QVERIFY(store.load(&saved, &error));
        QCOMPARE(saved.size(), expected.size());
    }

    void tableNeverShowsWholeKey()
    {
        KeyPool pool;
        pool.setKeys({ { KeyA, QString(), true },
                       { KeyB, QStringLiteral("team"), false },
                       { KeyC, QString(), true } });
        KeysPage page(&pool, nullptr, nullptr);
        const KeyTableModel *model = page.model();
        QCOMPARE(model->rowCount(), 3);
        const QStringList secrets { KeyA, KeyB, KeyC };
        for (int row = 0; row < model->rowCount(); ++row) {
            for (int column = 0; column < model->columnCount(); ++column) {
                for (int role : { int(Qt::DisplayRole), int(Qt::EditRole), int(Qt::ToolTipRole) }) {
                    const QString text = model->index(row, column).data(role).toString();
                    for (const QString &secret : secrets) {
                        QVERIFY2(!text.contains(secret),
                                 qPrintable(QStringLiteral("row %1 column %2").arg(row).arg(column)));
                        QVERIFY(!text.contains(secret.mid(8, 20))); // not even a long piece of it
                    }
                }
            }
        }
        QCOMPARE(model->index(0, KeyTableModel::KeyColumn).data().toString(), KeyPool::mask(KeyA));
        QCOMPARE(model->index(1, KeyTableModel::LabelColumn).data().toString(), QStringLiteral("team"));
        QCOMPARE(model->index(1, KeyTableModel::EnabledColumn).data(Qt::CheckStateRole).toInt(),
                 int(Qt::Unchecked));
        QCOMPARE(model->index(0, KeyTableModel::StateColumn).data().toString(), QStringLiteral("unknown"));
        // The Label column holds only a name the user gave; the masked key is in the Key column.
        QCOMPARE(model->index(0, KeyTableModel::LabelColumn).data().toString(), QString());
        QCOMPARE(model->index(0, KeyTableModel::LabelColumn).data(Qt::EditRole).toString(), QString());
        // A disabled key says so (as /_keyrelay/status does), not "unknown".
        QCOMPARE(model->index(1, KeyTableModel::StateColumn).data().toString(), QStringLiteral("disabled"));
    }

    void labelEditAndRemove()
    {
        QTemporaryDir dir;
        KeyPool pool;
        pool.setKeys({ { KeyA, QString(), true }, { KeyB, QString(), true } });
        FileKeyStore store(dir.filePath(QStringLiteral("keys.json")));
        KeysPage page(&pool, &store, nullptr);
        QVERIFY(page.model()->setData(page.model()->index(1, KeyTableModel::LabelColumn),
                                      QStringLiteral("backup")));
        QCOMPARE(pool.keys().at(1).label, QStringLiteral("backup"));
        page.view()->selectRow(0);
        QVERIFY(page.removeButton()->isEnabled());
        QTest::mouseClick(page.removeButton(), Qt::LeftButton);
        QCOMPARE(secretsOf(pool), QStringList { KeyB });
        QList<ApiKey> saved;
        QString error;
        QVERIFY(store.load(&saved, &error));
        QCOMPARE(saved.size(), 1);
        QCOMPARE(saved.first().label, QStringLiteral("backup"));

        // Keyboard: Ctrl+Enter adds from the paste box, Delete removes the selected key.
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        page.pasteBox()->setFocus();
        page.pasteBox()->setPlainText(KeyC);
        QTest::keyClick(page.pasteBox(), Qt::Key_Return, Qt::ControlModifier);
        QCOMPARE(secretsOf(pool), (QStringList { KeyB, KeyC }));
        page.view()->setFocus();
        page.view()->selectRow(1);
        QTest::keyClick(page.view(), Qt::Key_Delete);
        QCOMPARE(secretsOf(pool), QStringList { KeyB });
    }

    void removedKeysComeBackWithUndo()
    {
        // Issue 15: keys are never shown whole, so a removal must be undoable: the keys come back exactly
        // (place, label, enabled) and are saved again.
        QTemporaryDir dir;
        KeyPool pool;
        const QList<ApiKey> original { { KeyA, QStringLiteral("work"), true },
                                       { KeyB, QString(), false },
                                       { KeyC, QStringLiteral("spare"), false } };
        pool.setKeys(original);
        FileKeyStore store(dir.filePath(QStringLiteral("keys.json")));
        KeysPage page(&pool, &store, nullptr);
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        QVERIFY(page.undoBar()->isHidden());

        const QItemSelectionModel::SelectionFlags rows
            = QItemSelectionModel::Select | QItemSelectionModel::Rows;
        page.view()->selectionModel()->select(page.model()->index(0, 0), rows);
        page.view()->selectionModel()->select(page.model()->index(2, 0), rows);
        QTest::mouseClick(page.removeButton(), Qt::LeftButton);
        QCOMPARE(secretsOf(pool), QStringList { KeyB });
        QVERIFY(page.undoBar()->isVisible());
        QVERIFY(page.undoBar()->findChild<QLabel *>()->text().contains(QLatin1String("2")));

        QTest::mouseClick(page.undoButton(), Qt::LeftButton);
        compareKeys(pool.keys(), original);
        QList<ApiKey> saved;
        QString error;
        QVERIFY(store.load(&saved, &error));
        compareKeys(saved, original);
        QVERIFY(page.undoBar()->isHidden());
        QCOMPARE(page.undoRemove(), 0); // nothing left to undo
    }

    void clearingTheListIsUndoneWithCtrlZ()
    {
        QTemporaryDir dir;
        KeyPool pool;
        const QList<ApiKey> original { { KeyA, QString(), true }, { KeyB, QStringLiteral("b"), false } };
        pool.setKeys(original);
        FileKeyStore store(dir.filePath(QStringLiteral("keys.json")));
        KeysPage page(&pool, &store, nullptr);
        page.show();
        page.activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(&page));
        page.view()->setFocus();
        page.view()->selectAll();
        QTest::keyClick(page.view(), Qt::Key_Delete);
        QVERIFY(pool.isEmpty());
        QVERIFY(page.undoBar()->isVisible());
        QVERIFY(page.undoBar()->findChild<QLabel *>()->text().contains(QLatin1String("all")));
        QList<ApiKey> saved;
        QString error;
        QVERIFY(store.load(&saved, &error));
        QVERIFY(saved.isEmpty());

        // A key pasted meanwhile stays, and is not doubled.
        QVERIFY(page.model()->addKeys(KeyB) == 1);
        QTest::keyClick(page.view(), Qt::Key_Z, Qt::ControlModifier);
        QCOMPARE(secretsOf(pool), (QStringList { KeyA, KeyB }));
        QCOMPARE(pool.keys().at(0).enabled, true);
        QVERIFY(store.load(&saved, &error));
        QCOMPARE(saved.size(), 2);
        QVERIFY(page.undoBar()->isHidden());
    }

    void undoOfferExpires()
    {
        KeyPool pool;
        pool.setKeys({ { KeyA, QString(), true }, { KeyB, QString(), true } });
        KeysPage page(&pool, nullptr, nullptr);
        page.setUndoTimeoutMs(50);
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        page.view()->selectRow(1);
        QTest::mouseClick(page.removeButton(), Qt::LeftButton);
        QVERIFY(page.undoBar()->isVisible());
        QTRY_VERIFY(page.undoBar()->isHidden());
        QCOMPARE(page.undoRemove(), 0);
        QCOMPARE(secretsOf(pool), QStringList { KeyA });
        QCOMPARE(page.undoTimeoutMs(), 50);
        QVERIFY(KeysPage::DefaultUndoTimeoutMs >= 5000);
    }

    void uncheckingEnabledChangesWhatTheProxyUses()
    {
        it::MockUpstream upstream;
        QVERIFY(upstream.listen());
        upstream.setHandler(
            [](const it::RecordedRequest &) { return it::MockResponse::json(200, chatCompletion()); });
        KeyPool pool;
        pool.setKeys({ { KeyA, QString(), true }, { KeyB, QString(), true } });
        QTemporaryDir dir;
        FileKeyStore store(dir.filePath(QStringLiteral("keys.json")));
        KeysPage page(&pool, &store, nullptr);
        ProxyService service(&pool);
        ProxyConfig config;
        config.listenPort = 0;
        config.upstream = upstream.url();
        QString error;
        QVERIFY2(service.start(config, &error), qPrintable(error));
        QNetworkAccessManager client;

        for (int i = 0; i < 4; ++i)
            QCOMPARE(postThrough(&client, service.endpointUrl(), chatBody()).status, 200);
        QSet<QByteArray> used;
        for (const it::RecordedRequest &request : upstream.requests())
            used.insert(request.header("Authorization"));
        QCOMPARE(used, (QSet<QByteArray> { "Bearer " + KeyA.toUtf8(), "Bearer " + KeyB.toUtf8() }));

        // Uncheck key A in the table.
        const QModelIndex enabledA = page.model()->index(0, KeyTableModel::EnabledColumn);
        QVERIFY(page.model()->setData(enabledA, Qt::Unchecked, Qt::CheckStateRole));
        QCOMPARE(enabledA.data(Qt::CheckStateRole).toInt(), int(Qt::Unchecked));
        upstream.clearRequests();
        for (int i = 0; i < 4; ++i)
            QCOMPARE(postThrough(&client, service.endpointUrl(), chatBody()).status, 200);
        QCOMPARE(upstream.requestCount(), 4);
        for (const it::RecordedRequest &request : upstream.requests())
            QCOMPARE(request.header("Authorization"), "Bearer " + KeyB.toUtf8());
        // The client's own key never reaches the upstream.
        QList<ApiKey> saved;
        QVERIFY(store.load(&saved, &error));
        QCOMPARE(saved.at(0).enabled, false);
        QCOMPARE(saved.at(1).enabled, true);

        // Re-enabling brings it back.
        QVERIFY(page.model()->setData(enabledA, Qt::Checked, Qt::CheckStateRole));
        upstream.clearRequests();
        for (int i = 0; i < 2; ++i)
            QCOMPARE(postThrough(&client, service.endpointUrl(), chatBody()).status, 200);
        used.clear();
        for (const it::RecordedRequest &request : upstream.requests())
            used.insert(request.header("Authorization"));
        QVERIFY(used.contains("Bearer " + KeyA.toUtf8()));
        service.stop();
    }

    void testButton()
    {
        it::MockUpstream upstream;
        QVERIFY(upstream.listen());
        upstream.setHandler([](const it::RecordedRequest &request) { // key B is refused
            if (request.header("Authorization") == "Bearer " + KeyB.toUtf8())
                return it::MockResponse::json(
                    401,
                    R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}})");
            return it::MockResponse::json(200, chatCompletion());
        });
        KeyPool pool;
        pool.setKeys({ { KeyA, QString(), true }, { KeyB, QString(), true } });
        KeyTester tester;
        ProxyConfig config;
        config.upstream = upstream.url(QStringLiteral("/v1")); // a base pasted with its version
        tester.setConfig(config);
        KeysPage page(&pool, nullptr, &tester);
        page.resize(1000, 400);
        page.show();

        auto *buttonA = page.view()->findChild<QPushButton *>(QStringLiteral("testButton0"));
        auto *buttonB = page.view()->findChild<QPushButton *>(QStringLiteral("testButton1"));
        QVERIFY(buttonA);
        QVERIFY(buttonB);
        QSignalSpy finished(page.model(), &KeyTableModel::testFinished);
        // The reason the Test books in the pool is English whatever the window's language (it also
        // reaches /_keyrelay/status); the window translates it where it shows it.
        QTranslator chinese;
        QVERIFY(chinese.load(QLocale(QLocale::Chinese, QLocale::China), QStringLiteral("keyrelay"),
                             QStringLiteral("_"), QStringLiteral(":/keyrelay/i18n")));
        QCoreApplication::installTranslator(&chinese);
        buttonA->click();
        buttonB->click();
        QTRY_COMPARE(finished.count(), 2);
        QCOMPARE(pool.snapshot().at(1).lastError, QStringLiteral("test: Incorrect API key provided"));
        QVERIFY2(
            page.model()
                ->index(1, KeyTableModel::StateColumn)
                .data(Qt::ToolTipRole)
                .toString()
                .contains(QStringLiteral("测试：Incorrect API key provided")),
            qPrintable(page.model()->index(1, KeyTableModel::StateColumn).data(Qt::ToolTipRole).toString()));
        QCoreApplication::removeTranslator(&chinese);
        const QModelIndex resultA = page.model()->index(0, KeyTableModel::TestResultColumn);
        const QModelIndex resultB = page.model()->index(1, KeyTableModel::TestResultColumn);
        QCOMPARE(resultA.data().toString(), QStringLiteral("ok"));
        QCOMPARE(resultB.data().toString(), QStringLiteral("invalid key: Incorrect API key provided"));
        const QList<it::RecordedRequest> requests = upstream.requests();
        QCOMPARE(requests.size(), 2);
        for (const it::RecordedRequest &request : requests) {
            QCOMPARE(request.method, QByteArray("GET"));
            QCOMPARE(request.target, QByteArray("/v1/models")); // not /v1/v1/models
        }
        QSet<QByteArray> auth { requests.at(0).header("Authorization"),
                                requests.at(1).header("Authorization") };
        QCOMPARE(auth, (QSet<QByteArray> { "Bearer " + KeyA.toUtf8(), "Bearer " + KeyB.toUtf8() }));

        // No network: nothing listens on the upstream port.
        QTcpServer placeholder; // a port that was free a moment ago and is closed now
        QVERIFY(placeholder.listen(QHostAddress::LocalHost, 0));
        const quint16 closedPort = placeholder.serverPort();
        placeholder.close();
        config.upstream = QUrl(QStringLiteral("http://127.0.0.1:%1").arg(closedPort));
        tester.setConfig(config);
        finished.clear();
        buttonA = page.view()->findChild<QPushButton *>(QStringLiteral("testButton0"));
        buttonA->click();
        QTRY_COMPARE(finished.count(), 1);
        // Whole and right: the network was fine, the upstream refused the connection.
        QCOMPARE(resultA.data().toString(),
                 QStringLiteral("the upstream 127.0.0.1:%1 refused the connection").arg(closedPort));
        QVERIFY(resultA.data(Qt::ToolTipRole).toString().contains(resultA.data().toString().toHtmlEscaped()));

        // The upstream is back and a request with the key succeeds: the old failure is not shown any more.
        const KeyLease lease = pool.acquireFor({ KeyPool::keyId(KeyB) }, QStringLiteral("gpt-4o"));
        QCOMPARE(lease.keyId, KeyPool::keyId(KeyA));
        pool.report(lease.keyId, QStringLiteral("gpt-4o"), KeyVerdict::Success, -1, QString());
        pool.release(lease.keyId);
        page.model()->refresh();
        QCOMPARE(resultA.data().toString(), QString());
    }

    void testRevivesAnInvalidKeyOrSaysItIsOld()
    {
        it::MockUpstream upstream; // the model list answers for every key
        QVERIFY(upstream.listen());
        upstream.setHandler([](const it::RecordedRequest &) {
            return it::MockResponse::json(200, QByteArrayLiteral(R"({"object":"list","data":[]})"));
        });
        KeyPool pool;
        pool.setKeys({ { KeyA, QString(), true } });
        pool.report(KeyPool::keyId(KeyA), QString(), KeyVerdict::Invalid, -1,
                    QStringLiteral("401 invalid_api_key: Incorrect API key provided"));
        KeyTester tester;
        ProxyConfig config;
        config.upstream = upstream.url();
        tester.setConfig(config);
        KeysPage page(&pool, nullptr, &tester);
        const QModelIndex state = page.model()->index(0, KeyTableModel::StateColumn);
        const QModelIndex result = page.model()->index(0, KeyTableModel::TestResultColumn);
        QVERIFY(state.data().toString().startsWith(QStringLiteral("invalid, next check ")));

        // A Test that succeeds puts the key back in the rotation, and the table says so with the result.
        QString stateWhenFinished;
        connect(page.model(), &KeyTableModel::testFinished, this,
                [&] { stateWhenFinished = state.data().toString(); });
        QSignalSpy finished(page.model(), &KeyTableModel::testFinished);
        page.model()->testKey(0);
        QTRY_COMPARE(finished.count(), 1);
        QCOMPARE(stateWhenFinished, QStringLiteral("ok"));
        QCOMPARE(result.data().toString(), QStringLiteral("ok"));
        QVERIFY(pool.acquireFor({}, QStringLiteral("gpt-4o")).isValid());

        // The next chat request is refused after all: the "ok" of the test is old news now.
        pool.report(KeyPool::keyId(KeyA), QStringLiteral("gpt-4o"), KeyVerdict::Invalid, -1,
                    QStringLiteral("401 invalid_api_key: Incorrect API key provided"));
        page.model()->refresh();
        QVERIFY(state.data().toString().startsWith(QStringLiteral("invalid")));
        QCOMPARE(result.data().toString(), QStringLiteral("earlier: ok"));
        QVERIFY(result.data(Qt::ToolTipRole).toString().contains(QStringLiteral("changed since")));
    }

    void shownStatesEndOnTime()
    {
        const QDateTime start = QDateTime::currentDateTimeUtc();
        QDateTime now = start;
        KeyPool pool;
        QDateTime poolNow = start;
        pool.setClock([&poolNow] { return poolNow; });
        pool.setPolicy({ 300, 3600, 3, 0 });
        const QString keyD = QStringLiteral("sk-proj-DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDdddd");
        pool.setKeys({ { KeyA, QString(), true },
                       { KeyB, QString(), true },
                       { KeyC, QString(), true },
                       { keyD, QString(), false } });
        {
            KeyTableModel model(&pool, nullptr);
            QVERIFY(!model.nextStateChange().isValid()); // nothing ends: no timer
        }

        pool.report(KeyPool::keyId(KeyA), QStringLiteral("gpt-4o"), KeyVerdict::RateLimited, 1500, QString());
        pool.report(KeyPool::keyId(KeyB), QString(), KeyVerdict::Invalid, -1,
                    QStringLiteral("the upstream refused the key"));
        pool.report(KeyPool::keyId(KeyC), QString(), KeyVerdict::Exhausted, -1, QString());
        // Made after the reports: no refresh of the pool's own is pending, only the end of a state
        // can change the table below.
        KeyTableModel model(&pool, nullptr);
        model.setClock([&now] { return now; });
        const auto stateOf = [&model](int row) {
            return model.index(row, KeyTableModel::StateColumn).data().toString();
        };
        const auto timeOf = [](const QDateTime &when) {
            return QLocale().toString(when.toLocalTime().time(), QLocale::ShortFormat);
        };
        QCOMPARE(stateOf(0), QStringLiteral("rate-limited until %1").arg(timeOf(start.addMSecs(1500))));
        // The time an invalid key is looked at again is the *next* check.
        QCOMPARE(stateOf(1), QStringLiteral("invalid, next check %1").arg(timeOf(start.addSecs(300))));
        // Short enough for one line; when it is tried again is in the tooltip.
        QCOMPARE(stateOf(2), QStringLiteral("quota used up"));
        QVERIFY(model.index(2, KeyTableModel::StateColumn)
                    .data(Qt::ToolTipRole)
                    .toString()
                    .contains(timeOf(start.addSecs(3600))));
        QCOMPARE(stateOf(3), QStringLiteral("disabled"));
        QCOMPARE(model.nextStateChange(), start.addMSecs(1500)); // the earliest end

        // The rate limit ends 1.5 s later: the table changes by itself.
        QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
        now = start.addSecs(2);
        QTRY_VERIFY(!changed.isEmpty()); // the view is told when the time comes, without a request
        QCOMPARE(stateOf(0), QStringLiteral("ok"));
        QCOMPARE(model.nextStateChange(), start.addSecs(300));
        now = start.addSecs(301);
        model.refresh();
        QCOMPARE(stateOf(1), QStringLiteral("invalid, checking"));
        // The background re-check books the next one: the table follows without a status change.
        poolNow = now;
        QCOMPARE(pool.takeDueRechecks().size(), 1);
        QTRY_COMPARE(stateOf(1), QStringLiteral("invalid, next check %1").arg(timeOf(now.addSecs(300))));
        poolNow = start;
        now = start.addSecs(3601);
        model.refresh();
        QVERIFY(!model.nextStateChange().isValid()); // nothing left to wait for: no polling
    }

    void smallWindowKeepsTestAndResultOnScreen()
    {
        KeyPool pool;
        pool.setKeys(
            { { KeyA, QStringLiteral("work"), true }, { KeyB, QString(), true }, { KeyC, QString(), true } });
        pool.report(KeyPool::keyId(KeyB), QStringLiteral("gpt-4o"), KeyVerdict::RateLimited, 600000,
                    QString());
        pool.report(KeyPool::keyId(KeyC), QString(), KeyVerdict::Invalid, -1,
                    QStringLiteral("401 invalid_api_key: Incorrect API key provided"));
        KeyTester tester;
        KeysPage page(&pool, nullptr, &tester);
        page.resize(740, 430); // the Keys page of a 760x520 window
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        QTableView *view = page.view();
        const int visible = view->viewport()->width();
        const int testRight = view->columnViewportPosition(KeyTableModel::TestColumn)
            + view->columnWidth(KeyTableModel::TestColumn);
        QVERIFY2(testRight <= visible, qPrintable(QStringLiteral("%1 > %2").arg(testRight).arg(visible)));
        QVERIFY(view->columnViewportPosition(KeyTableModel::TestResultColumn)
                    + view->fontMetrics().horizontalAdvance(QStringLiteral("invalid key"))
                <= visible);
        // The State column gave way; its whole text is in the tooltip.
        const QModelIndex state = page.model()->index(1, KeyTableModel::StateColumn);
        QVERIFY(view->columnWidth(KeyTableModel::StateColumn)
                >= view->fontMetrics().horizontalAdvance(QStringLiteral("rate-limi")));
        QVERIFY(state.data(Qt::ToolTipRole)
                    .toString()
                    .startsWith(QStringLiteral("<p>") + state.data().toString()));
        QVERIFY(!view->wordWrap());
        QTRY_COMPARE(view->horizontalScrollBar()->maximum(), 0); // nothing scrolls off
        if (const QString out = qEnvironmentVariable("KEYRELAY_SCREENSHOT_DIR"); !out.isEmpty())
            page.grab().save(out + QStringLiteral("/keys-page-740.png")); // for looking at, not a check

        // With room, State shows whole, also a state that comes after the keys were added.
        KeyPool fresh;
        fresh.setKeys({ { KeyA, QString(), true }, { KeyB, QString(), true } });
        KeysPage roomy(&fresh, nullptr, &tester);
        roomy.resize(1080, 600);
        roomy.show();
        QVERIFY(QTest::qWaitForWindowExposed(&roomy));
        fresh.report(KeyPool::keyId(KeyB), QString(), KeyVerdict::Invalid, -1, QString());
        roomy.model()->refresh();
        const QModelIndex later = roomy.model()->index(1, KeyTableModel::StateColumn);
        QVERIFY(later.data().toString().startsWith(QStringLiteral("invalid, next check")));
        QVERIFY(roomy.view()->columnWidth(KeyTableModel::StateColumn)
                >= roomy.view()->fontMetrics().horizontalAdvance(later.data().toString()) + 6);
    }

    void tokensTodayPerKey()
    {
        QTemporaryDir dir;
        KeyPool pool;
        const QString a = QStringLiteral("sk-tokens-aaaaaaaaaaaaaaaa0001");
        const QString b = QStringLiteral("sk-tokens-bbbbbbbbbbbbbbbb0002");
        pool.setKeys({ { a, QString(), true }, { b, QString(), true } });
        KeyTableModel model(&pool, nullptr);
        // Without a usage store the column stays empty.
        QVERIFY(model.data(model.index(0, KeyTableModel::TokensTodayColumn)).isNull());
        UsageStore usage(dir.filePath(QStringLiteral("usage.sqlite")));
        usage.record({ KeyPool::keyId(a), QString(), QStringLiteral("gpt-4o"), 10, 5, 15 });
        usage.record({ KeyPool::keyId(a), QString(), QStringLiteral("gpt-4o-mini"), 1, 1, 2 });
        usage.record({ KeyPool::keyId(b), QString(), QStringLiteral("gpt-4o"), 100, 0, 100 });
        model.setUsageStore(&usage);
        QCOMPARE(model.headerData(KeyTableModel::TokensTodayColumn, Qt::Horizontal).toString(),
                 QStringLiteral("Tokens today"));
        QCOMPARE(model.data(model.index(0, KeyTableModel::TokensTodayColumn), Qt::EditRole).toLongLong(), 17);
        QCOMPARE(model.data(model.index(1, KeyTableModel::TokensTodayColumn), Qt::EditRole).toLongLong(),
                 100);
        // A later request shows after the next refresh.
        usage.record({ KeyPool::keyId(b), QString(), QStringLiteral("gpt-4o"), 1, 2, 3 });
        model.scheduleRefresh();
        QTRY_COMPARE(model.data(model.index(1, KeyTableModel::TokensTodayColumn), Qt::EditRole).toLongLong(),
                     103);
    }

    void urlForTests_data()
    {
        QTest::addColumn<QString>("base");
        QTest::addColumn<QString>("expected");
        QTest::newRow("host") << QStringLiteral("https://api.openai.com")
                              << QStringLiteral("https://api.openai.com/v1/models");
        QTest::newRow("slash") << QStringLiteral("https://api.openai.com/")
                               << QStringLiteral("https://api.openai.com/v1/models");
        QTest::newRow("v1") << QStringLiteral("https://api.example.com/v1")
                            << QStringLiteral("https://api.example.com/v1/models");
        QTest::newRow("v1 slash") << QStringLiteral("https://api.example.com/v1/")
                                  << QStringLiteral("https://api.example.com/v1/models");
        QTest::newRow("prefix") << QStringLiteral("https://gw.example.com/openai")
                                << QStringLiteral("https://gw.example.com/openai/v1/models");
    }

    void urlForTests()
    {
        QFETCH(QString, base);
        QFETCH(QString, expected);
        QCOMPARE(KeyTester::modelsUrl(QUrl(base)).toString(), expected);
    }
};

QTEST_MAIN(TestKeysPage)
#include "tst_keyspage.moc"
