// LogModel: ring buffer bound, batched flushes, filter, CSV quoting.
#include "logmodel.h"
#include "logpage.h"

#include <QComboBox>
#include <QElapsedTimer>
#include <QLineEdit>
#include <QPushButton>
#include <QScrollBar>
#include <QTableView>
#include <QTranslator>

#include <QSignalSpy>
#include <QTest>

using namespace keyrelay;

namespace {
RequestRecord makeRecord(quint64 id, int status = 200,
                         const QString &path = QStringLiteral("/v1/chat/completions"))
{
    RequestRecord record;
    record.id = id;
    record.startedAt = QDateTime::currentDateTimeUtc();
    record.method = QStringLiteral("POST");
    record.path = path;
    record.model = QStringLiteral("gpt-4o");
    record.keyLabel = QStringLiteral("sk-…abcd");
    record.status = status;
    record.latencyMs = 12;
    record.responseBytes = 1234;
    record.totalTokens = 7;
    record.promptTokens = 5;
    record.completionTokens = 2;
    return record;
}
} // namespace

class TestLogModel : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void boundHoldsAfterManyRecords()
    {
        LogModel model(nullptr, LogModel::DefaultCapacity, 100000); // flush only when asked
        QCOMPARE(model.capacity(), 10000);
        for (quint64 i = 1; i <= 25000; ++i) {
            model.append(makeRecord(i));
            if (i % 3000 == 0)
                model.flush();
        }
        model.flush();
        QCOMPARE(model.rowCount(), 10000);
        QCOMPARE(model.record(0).id, quint64(15001));
        QCOMPARE(model.record(9999).id, quint64(25000));
    }

    void oneBigBurstKeepsNewest()
    {
        LogModel model(nullptr, 100, 100000);
        for (quint64 i = 1; i <= 250; ++i)
            model.append(makeRecord(i));
        QVERIFY(model.pendingCount() <= 100);
        model.flush();
        QCOMPARE(model.rowCount(), 100);
        QCOMPARE(model.record(0).id, quint64(151));
    }

    void rowsAppearAfterTheFlush()
    {
        LogModel model(nullptr, 10000, 150);
        QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
        for (quint64 i = 1; i <= 500; ++i)
            model.append(makeRecord(i));
        QCOMPARE(model.rowCount(), 0); // nothing before the timer fires
        QTRY_COMPARE(model.rowCount(), 500);
        QCOMPARE(inserted.count(), 1); // one batch
        const QList<QVariant> args = inserted.first();
        QCOMPARE(args.at(1).toInt(), 0);
        QCOMPARE(args.at(2).toInt(), 499);
    }

    void removalsAreBatchedToo()
    {
        LogModel model(nullptr, 1000, 100000);
        for (quint64 i = 1; i <= 1000; ++i)
            model.append(makeRecord(i));
        model.flush();
        QSignalSpy removed(&model, &QAbstractItemModel::rowsRemoved);
        for (quint64 i = 1001; i <= 1300; ++i)
            model.append(makeRecord(i));
        model.flush();
        QCOMPARE(removed.count(), 1);
        QCOMPARE(removed.first().at(2).toInt(), 299);
        QCOMPARE(model.rowCount(), 1000);
        QCOMPARE(model.record(0).id, quint64(301));
    }

    void clearEmpties()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1));
        model.flush();
        model.append(makeRecord(2));
        model.clear();
        model.flush();
        QCOMPARE(model.rowCount(), 0);
    }

    void filter()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1, 200, QStringLiteral("/v1/models")));
        model.append(makeRecord(2, 401));
        model.append(makeRecord(3, 200));
        RequestRecord failed = makeRecord(4, 0);
        failed.error = QStringLiteral("client went away");
        model.append(failed);
        model.flush();
        LogFilterModel filter;
        filter.setSourceModel(&model);
        QCOMPARE(filter.rowCount(), 4);
        filter.setErrorsOnly(true);
        QCOMPARE(filter.rowCount(), 2);
        filter.setErrorsOnly(false);
        filter.setText(QStringLiteral("MODELS"));
        QCOMPARE(filter.rowCount(), 1);
        filter.setText(QStringLiteral("went away"));
        QCOMPARE(filter.rowCount(), 1);
    }

    void followPausesWhenScrolledUp()
    {
        LogModel model(nullptr, 10000, 20);
        LogPage page(&model);
        page.resize(900, 300);
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        QScrollBar *bar = page.view()->verticalScrollBar();
        for (quint64 i = 1; i <= 200; ++i)
            model.append(makeRecord(i));
        QTRY_COMPARE(page.view()->model()->rowCount(), 200);
        QTRY_VERIFY(bar->maximum() > 0);
        QTRY_COMPARE(bar->value(), bar->maximum()); // follows the newest row
        QVERIFY(page.isFollowing());

        bar->setValue(0); // the user scrolls up
        QVERIFY(!page.isFollowing());
        for (quint64 i = 201; i <= 400; ++i)
            model.append(makeRecord(i));
        QTRY_COMPARE(page.view()->model()->rowCount(), 400);
        QCOMPARE(bar->value(), 0); // stays where the user is

        bar->setValue(bar->maximum()); // back at the bottom: follows again
        QVERIFY(page.isFollowing());
        for (quint64 i = 401; i <= 600; ++i)
            model.append(makeRecord(i));
        QTRY_COMPARE(page.view()->model()->rowCount(), 600);
        QTRY_COMPARE(bar->value(), bar->maximum());
    }

    void burstKeepsTheUiResponsive()
    {
        // 20,000 records arriving "at once" become a handful of model updates, not 20,000.
        LogModel model(nullptr, 10000, 100);
        LogPage page(&model);
        page.show();
        QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
        QElapsedTimer timer;
        timer.start();
        for (quint64 i = 1; i <= 20000; ++i) {
            model.append(makeRecord(i));
            if (i % 2000 == 0)
                QCoreApplication::processEvents();
        }
        QTRY_VERIFY(model.pendingCount() == 0 && model.rowCount() == 10000 && model.record(9999).id == 20000);
        QVERIFY(inserted.count() <= 20); // one per flush (100 ms), however fast the records come
        qInfo() << "20000 records shown in" << timer.elapsed() << "ms with" << inserted.count()
                << "insertion(s)";
    }

    void filterWidgets()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1, 200));
        model.append(makeRecord(2, 429));
        model.flush();
        LogPage page(&model);
        QCOMPARE(page.view()->model()->rowCount(), 2);
        page.statusFilter()->setCurrentIndex(1);
        QCOMPARE(page.view()->model()->rowCount(), 1);
        page.statusFilter()->setCurrentIndex(0);
        page.filterEdit()->setText(QStringLiteral("no such thing"));
        QCOMPARE(page.view()->model()->rowCount(), 0);
    }

    void keyRowsLeaveRequestColumnsEmpty()
    {
        LogModel model(nullptr, 100, 100000);
        RequestRecord event;
        event.startedAt = QDateTime::currentDateTimeUtc();
        event.method = QStringLiteral("KEY");
        event.path = QStringLiteral("stopped working");
        event.keyLabel = QStringLiteral("sk-…abcd");
        event.error = QStringLiteral("429 rate limited");
        model.append(event);
        model.flush();
        for (int column :
             { int(LogModel::StatusColumn), int(LogModel::StreamedColumn), int(LogModel::BytesColumn),
               int(LogModel::LatencyColumn), int(LogModel::TokensColumn) }) {
            QCOMPARE(model.index(0, column).data().toString(), QString());
            QCOMPARE(model.cellText(0, column), QString());
        }
        QCOMPARE(model.index(0, LogModel::ErrorColumn).data().toString(), QStringLiteral("429 rate limited"));
    }

    void rowsAreInTimeOrder()
    {
        // A request that began at .265 and ended late goes above the key event of .281.
        LogModel model(nullptr, 100, 100000);
        const QDateTime base = QDateTime::currentDateTimeUtc();
        RequestRecord first = makeRecord(1);
        first.startedAt = base;
        model.append(first);
        model.flush();
        RequestRecord event = makeRecord(0);
        event.method = QStringLiteral("KEY");
        event.startedAt = base.addMSecs(281);
        model.append(event);
        model.flush();
        RequestRecord post = makeRecord(2);
        post.startedAt = base.addMSecs(265);
        RequestRecord later = makeRecord(3);
        later.startedAt = base.addMSecs(300);
        model.append(later);
        model.append(post);
        QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
        model.flush();
        QCOMPARE(model.rowCount(), 4);
        QCOMPARE(model.record(0).id, quint64(1));
        QCOMPARE(model.record(1).id, quint64(2)); // .265
        QCOMPARE(model.record(2).method, QStringLiteral("KEY")); // .281
        QCOMPARE(model.record(3).id, quint64(3)); // .300
        QCOMPARE(inserted.count(), 2);
        // Over capacity, the oldest go.
        LogModel small(nullptr, 3, 100000);
        for (int i : { 5, 1, 4, 2, 3 }) {
            RequestRecord record = makeRecord(quint64(i));
            record.startedAt = base.addMSecs(i);
            small.append(record);
            if (i == 1)
                small.flush();
        }
        small.flush();
        QCOMPARE(small.rowCount(), 3);
        QCOMPARE(small.record(0).id, quint64(3));
        QCOMPARE(small.record(2).id, quint64(5));
        QCOMPARE(small.requestCount(), 3);
    }

    void countExcludesKeyRows()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1));
        model.append(makeRecord(2, 401));
        RequestRecord event = makeRecord(0);
        event.method = QStringLiteral("KEY");
        event.status = 0;
        event.error = QStringLiteral("401 invalid_api_key");
        model.append(event);
        model.flush();
        QCOMPARE(model.requestCount(), 2);
        LogPage page(&model);
        QVERIFY2(page.countText().startsWith(QStringLiteral("2 request(s) in the log")),
                 qPrintable(page.countText()));
        QVERIFY(page.countText().contains(QStringLiteral("1 key event(s)")));
        page.statusFilter()->setCurrentIndex(1); // errors only: the 401 and the key event
        QCOMPARE(page.view()->model()->rowCount(), 2);
        QCOMPARE(page.countText(), QStringLiteral("1 of 2 request(s) shown"));
        model.clear();
        QCOMPARE(model.requestCount(), 0);
    }

    void methodColumnFitsOptions()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1));
        model.flush();
        LogPage page(&model);
        const QTableView *view = page.view();
        QVERIFY(view->columnWidth(LogModel::MethodColumn)
                > view->fontMetrics().horizontalAdvance(QStringLiteral("OPTIONS")) + 6);
    }

    void blockedWebsiteIsShownWholeAndAllowedOnce()
    {
        const QString origin = QStringLiteral("https://chat.example-with-a-long-name.com");
        LogModel model(nullptr, 100, 100000);
        RequestRecord blocked = makeRecord(1, 403);
        blocked.origin = origin;
        blocked.originBlocked = true;
        blocked.startedAt = QDateTime::currentDateTimeUtc().addSecs(-5);
        // The core's English text (what a client and the headless log get).
        blocked.error = QStringLiteral("the website %1 may not use KeyRelay; allow it in KeyRelay's settings "
                                       "(security/allowedOrigins)")
                            .arg(origin);
        model.append(blocked);
        model.flush();
        LogPage page(&model);
        page.resize(900, 300);
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        // The site's name comes first (an elided cell still shows it), the whole text is the tooltip.
        const QModelIndex error = model.index(0, LogModel::ErrorColumn);
        QVERIFY2(error.data().toString().startsWith(origin), qPrintable(error.data().toString()));
        QCOMPARE(error.data(Qt::ToolTipRole).toString(), error.data().toString());

        page.view()->selectRow(0);
        QVERIFY(page.allowWebsiteButton()->isVisible());
        QSignalSpy requested(&page, &LogPage::allowWebsiteRequested);
        page.allowWebsiteButton()->click();
        QCOMPARE(requested.count(), 1);
        QCOMPARE(requested.first().first().toString(), origin);
        // The window confirms it: the Log page says so, and stops offering it.
        page.websiteAllowed(origin);
        QVERIFY(page.noticeText().contains(origin));
        QVERIFY(!page.allowWebsiteButton()->isVisible());
        QCOMPARE(page.selectedBlockedOrigin(), QString());

        // A new refusal (the user took it out of the list again) offers it again.
        RequestRecord again = blocked;
        again.id = 2;
        again.startedAt = QDateTime::currentDateTimeUtc().addSecs(1);
        model.append(again);
        model.flush();
        page.view()->selectRow(1);
        QCOMPARE(page.selectedBlockedOrigin(), origin);

        // A request from the site that went through shows it is allowed, even without the confirmation.
        RequestRecord passed = makeRecord(3);
        passed.origin = origin;
        passed.startedAt = QDateTime::currentDateTimeUtc().addSecs(2);
        model.append(passed);
        model.flush();
        page.view()->selectRow(1);
        QCOMPARE(page.selectedBlockedOrigin(), QString());
    }

    void coreMessagesInChinese()
    {
        QTranslator translator;
        QVERIFY(translator.load(QLocale(QLocale::Chinese, QLocale::China), QStringLiteral("keyrelay"),
                                QStringLiteral("_"), QStringLiteral(":/keyrelay/i18n")));
        QCoreApplication::installTranslator(&translator);
        LogModel model(nullptr, 100, 100000);
        RequestRecord blocked = makeRecord(1, 403);
        blocked.error
            = QStringLiteral("the website https://x.example may not use KeyRelay; allow it in KeyRelay's "
                             "settings (security/allowedOrigins)");
        model.append(blocked);
        RequestRecord refused = makeRecord(2, 502);
        refused.error = QStringLiteral("the upstream api.example.com:443 refused the connection");
        model.append(refused);
        RequestRecord event = makeRecord(3);
        event.method = QStringLiteral("KEY");
        event.error = QStringLiteral("the upstream refused the key");
        model.append(event);
        RequestRecord upstreams = makeRecord(4, 400);
        upstreams.error = QStringLiteral("400 invalid_request_error: bad model"); // the upstream's words
        model.append(upstreams);
        model.flush();
        const auto errorOf = [&model](int row) {
            return model.index(row, LogModel::ErrorColumn).data().toString();
        };
        QCoreApplication::removeTranslator(&translator);
        const QString englishBlocked = errorOf(0);
        QCoreApplication::installTranslator(&translator);
        QVERIFY(errorOf(0).startsWith(QStringLiteral("https://x.example")));
        QVERIFY2(errorOf(0) != englishBlocked, qPrintable(errorOf(0)));
        QVERIFY2(errorOf(1).contains(QStringLiteral("api.example.com:443"))
                     && !errorOf(1).contains(QStringLiteral("refused")),
                 qPrintable(errorOf(1)));
        QVERIFY2(!errorOf(2).contains(QStringLiteral("refused")), qPrintable(errorOf(2)));
        QCOMPARE(errorOf(3), upstreams.error);
        QCoreApplication::removeTranslator(&translator);
        QCOMPARE(errorOf(3), upstreams.error);
        QVERIFY(errorOf(1).contains(QStringLiteral("refused the connection")));
    }

    void csvField_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("plain") << QStringLiteral("abc") << QStringLiteral("abc");
        QTest::newRow("empty") << QString() << QString();
        QTest::newRow("comma") << QStringLiteral("a,b") << QStringLiteral("\"a,b\"");
        QTest::newRow("quote") << QStringLiteral("say \"hi\"") << QStringLiteral("\"say \"\"hi\"\"\"");
        QTest::newRow("newline") << QStringLiteral("line1\nline2") << QStringLiteral("\"line1\nline2\"");
        QTest::newRow("cr") << QStringLiteral("a\rb") << QStringLiteral("\"a\rb\"");
        QTest::newRow("leading space") << QStringLiteral(" x") << QStringLiteral("\" x\"");
        QTest::newRow("unicode") << QStringLiteral("模型") << QStringLiteral("模型");
        // Formula injection: a spreadsheet must see text, not a formula.
        QTest::newRow("equals") << QStringLiteral("=HYPERLINK(\"http://x\")")
                                << QStringLiteral("\"'=HYPERLINK(\"\"http://x\"\")\"");
        QTest::newRow("plus") << QStringLiteral("+cmd|' /C calc'!A0")
                              << QStringLiteral("'+cmd|' /C calc'!A0");
        QTest::newRow("minus formula") << QStringLiteral("-2+3") << QStringLiteral("'-2+3");
        QTest::newRow("at") << QStringLiteral("@SUM(A1)") << QStringLiteral("'@SUM(A1)");
        QTest::newRow("leading tab") << QStringLiteral("\t=1") << QStringLiteral("'\t=1");
        QTest::newRow("negative number stays") << QStringLiteral("-1") << QStringLiteral("-1");
        QTest::newRow("dash stays") << QStringLiteral("-") << QStringLiteral("-");
    }

    void csvField()
    {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        QCOMPARE(LogModel::csvField(text), expected);
    }
    void providerAndFallbackAreShown()
    {
        LogModel model(nullptr, 100, 100000);
        RequestRecord tried = makeRecord(1, 503, QStringLiteral("/v1/chat/completions"));
        tried.provider = QStringLiteral("deepseek");
        tried.fellBack = true;
        tried.error = QStringLiteral("upstream overloaded");
        RequestRecord served = makeRecord(2, 200, QStringLiteral("/v1/chat/completions"));
        served.startedAt = tried.startedAt.addMSecs(1);
        served.provider = QStringLiteral("openrouter");
        model.append(tried);
        model.append(served);
        model.flush();
        QCOMPARE(model.headerText(LogModel::ProviderColumn), QStringLiteral("Provider"));
        QCOMPARE(model.index(0, LogModel::ProviderColumn).data().toString(), QStringLiteral("deepseek"));
        QCOMPARE(model.index(0, LogModel::StatusColumn).data().toString(), QStringLiteral("503"));
        QCOMPARE(model.index(0, LogModel::ErrorColumn).data().toString(),
                 QStringLiteral("→ fallback: upstream overloaded"));
        QVERIFY(!model.index(0, LogModel::StatusColumn).data(Qt::ToolTipRole).toString().isEmpty());
        QCOMPARE(model.index(1, LogModel::ProviderColumn).data().toString(), QStringLiteral("openrouter"));
        QCOMPARE(model.index(1, LogModel::ErrorColumn).data().toString(), QString());
        QVERIFY(model.toCsv({ 0 }).contains(QStringLiteral(",deepseek,")));
    }

    void csvExport()
    {
        LogModel model(nullptr, 100, 100000);
        RequestRecord record = makeRecord(1, 500, QStringLiteral("/v1/chat/completions?a=1,2"));
        record.error = QStringLiteral("upstream said \"no\",\nthen hung up");
        model.append(record);
        model.flush();
        const QString csv = model.toCsv({ 0 });
        const QStringList lines = csv.split(QStringLiteral("\r\n"));
        QCOMPARE(lines.size(), 3); // header, row, empty after the final CRLF
        QVERIFY(lines.at(0).startsWith(QStringLiteral("Time,Method,Path,Model,Provider,Key,Status")));
        QVERIFY(lines.at(1).contains(QStringLiteral(",\"/v1/chat/completions?a=1,2\",")));
        QVERIFY(lines.at(1).endsWith(QStringLiteral(",\"upstream said \"\"no\"\",\nthen hung up\"")));
        QVERIFY(lines.at(1).contains(QStringLiteral(",500,")));
        QVERIFY(lines.at(1).contains(QStringLiteral(",7 (5+2),")));
    }
};

QTEST_MAIN(TestLogModel)
#include "tst_logmodel.moc"
